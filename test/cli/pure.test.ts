/** The CLI's and the lab's pure decisions, as tables. */
import { mergeValues } from '../../lab/cluster/index.js';
import { summarise as summariseDemo } from '../../lab/workloads/timeline.js';
import { remoteNames, withoutRemote } from '../../cli/connect.js';
import { helmErrorLine } from '../../cli/install.js';
import { parseDuration } from '../../cli/options.js';
import { annotationPatch } from '../../cli/service.js';
import { type AgentProbe, summarise } from '../../cli/status.js';

const agent = (node: string, connected: boolean, services = 1): AgentProbe => ({
  node,
  url: `http://${node}/status`,
  status: { cluster: 'east', node, remotes: [{ name: 'west', connected, ready: connected, synced: { services: connected }, counts: { services, nodes: 3 } }] },
});
const base = { context: 'east', mode: 'direct' as const, apiserver: { ready: true, detail: 'ready' }, expectedRemotes: ['west'], globalServices: [], problems: [] };

test.each([
  ['all agents synced', [agent('a', true, 1), agent('b', true, 3)], true, { connected: 2, synced: 2, services: { min: 1, avg: 2, max: 3 } }],
  ['one agent disconnected', [agent('a', true), agent('b', false)], false, { connected: 1, synced: 1 }],
  ['one agent unreachable', [agent('a', true), { node: 'b', url: 'x', error: 'ECONNREFUSED' }], false, { connected: 1, agents: 2 }],
])('status: %s', (_name, agents, ready, remote) => {
  const report = summarise({ ...base, agents });
  expect(report.ready).toBe(ready);
  expect(report.remotes[0]).toMatchObject(remote);
  expect(report.errors.length > 0).toBe(!ready);
});

test('status: a disconnected agent points at the kvstoremesh in cached mode, at the peer in direct mode', () => {
  const hint = (mode: 'cached' | 'direct') =>
    summarise({ ...base, mode, agents: [agent('a', false)] }).errors.map((e) => [e.message, e.hint]);
  expect(hint('cached')).toEqual([[expect.stringContaining('(through the local cache)'), expect.stringContaining('-c kvstoremesh')]]);
  expect(hint('direct')).toEqual([[expect.not.stringContaining('local cache'), expect.stringContaining("west's etcd endpoint is reachable")]]);
});

test('annotation patches', () => {
  expect(annotationPatch('global', { affinity: 'remote' })).toEqual({
    'clustermesh.io/global': 'true',
    'clustermesh.io/shared': null,
    'clustermesh.io/affinity': 'remote',
    'clustermesh.io/min-healthy-local': null,
  });
  expect(annotationPatch('local')['clustermesh.io/global']).toBe('false');
  expect(() => annotationPatch('local', { affinity: 'local' })).toThrow(/apply only to service global/);
});

test('remotes secret entries', () => {
  const data = { west: 'y', 'west.etcd-client.crt': 'c', north: 'n', 'north.etcd-client.key': 'k' };
  expect(remoteNames(data)).toEqual(['north', 'west']);
  expect(withoutRemote(data, 'west')).toEqual({ north: 'n', 'north.etcd-client.key': 'k' });
});

test('durations', () => {
  expect([parseDuration('2m'), parseDuration('90s'), parseDuration('500ms')]).toEqual([120_000, 90_000, 500]);
  expect(() => parseDuration('soon')).toThrow(/not a duration/);
});

test.each([
  ['objects merge key by key', { a: { b: 1, c: 2 } }, { a: { c: 3 } }, { a: { b: 1, c: 3 } }],
  ['lists replace', { a: [1, 2] }, { a: [3] }, { a: [3] }],
  ['a scalar replaces an object', { a: { b: 1 } }, { a: 'x' }, { a: 'x' }],
  ['new keys are added', { a: 1 }, { b: { c: 2 } }, { a: 1, b: { c: 2 } }],
])("the lab's chart values merge as helm's do: %s", (_what, base, over, merged) => {
  expect(mergeValues(base, over)).toEqual(merged);
});

test('demo summary: failover and failback times, failures per phase', () => {
  const records = [
    { t: 0, answer: 'east/echo-1', error: null },
    { t: 1000, answer: null, error: 'ECONNREFUSED' },
    { t: 1100, answer: 'west/echo-1', error: null },
    { t: 2000, answer: 'west/echo-2', error: null },
    { t: 2300, answer: 'east/echo-2', error: null },
  ];
  expect(summariseDemo(records, 'east', 'west', 1000, 2000)).toEqual({
    total: 5,
    failed: 1,
    failedAfterRemoval: 1,
    failedAfterRestore: 0,
    failoverMs: 100,
    failbackMs: 300,
    answeredBy: { east: 2, west: 2 },
    errors: { ECONNREFUSED: 1 },
  });
});

test.each([
  [
    'a schema failure listing two problems',
    "Error: values don't meet the specifications of the schema(s) in the following chart(s):\nclustermesh:\n- at '/agent/statusPort': minimum: got 0, want 1\n- at '/apiserver/replicas': got string, want integer\n",
    "values don't meet the specifications of the schema(s) in the following chart(s): clustermesh: at '/agent/statusPort': minimum: got 0, want 1; at '/apiserver/replicas': got string, want integer",
  ],
  ['warnings before the error', 'WARNING: Kubernetes configuration file is group-readable\nError: UPGRADE FAILED: context deadline exceeded\n', 'UPGRADE FAILED: context deadline exceeded'],
  ['no Error: line', 'something odd\nthe last words\n', 'the last words'],
  ['nothing', '', ''],
])("helm's error as one line: %s", (_what, stderr, line) => {
  expect(helmErrorLine(stderr)).toBe(line);
});
