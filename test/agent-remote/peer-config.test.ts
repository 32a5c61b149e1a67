/** The pure parts of agent/remote: peer entries, change plans, ID conflicts, rejection classes, resync. */
import {
  clusterIdConflict,
  entryResolver,
  parsePeerConfigSet,
  planPeerChanges,
  withoutLocalCluster,
  type PeerConfig,
} from '../../lib/remotes/peer-config.js';
import { RecordTable } from '../../agent/remote/records.js';
import { rejectionClass } from '../../lib/kvstore/validate.js';
import { secretEntries } from '../../lib/remotes/config-source.js';
import { validateRemoteRecord } from '../../lib/kvstore/validate.js';
import { serviceKey } from '../../lib/kvstore/keys.js';

const PEM = (what: string) => `-----BEGIN ${what}-----\nAAAA\n-----END ${what}-----\n`;
const yaml = (endpoints: string, dir = '/var/lib/clustermesh/remotes', peer = 'east') =>
  `endpoints: ${endpoints}\ntrusted-ca-file: ${dir}/${peer}.etcd-client-ca.crt\ncert-file: ${dir}/${peer}.etcd-client.crt\nkey-file: ${dir}/${peer}.etcd-client.key\n`;
const files = (peer: string) => ({
  [`${peer}.etcd-client-ca.crt`]: PEM('CERTIFICATE'),
  [`${peer}.etcd-client.crt`]: PEM('CERTIFICATE'),
  [`${peer}.etcd-client.key`]: PEM('PRIVATE KEY'),
});
const parse = (entries: Record<string, string>) => {
  const map = new Map(Object.entries(entries));
  return parsePeerConfigSet(map, entryResolver(map, 'test secret'));
};

describe('parsePeerConfigSet', () => {
  it('reads a peer whose files are named by their mount path', () => {
    const set = parse({ east: yaml('["https://10.99.0.2:2379"]'), ...files('east') });
    expect(set.invalid).toEqual([]);
    expect(set.peers).toEqual([
      {
        name: 'east',
        endpoints: ['https://10.99.0.2:2379'],
        caPem: PEM('CERTIFICATE'),
        certPem: PEM('CERTIFICATE'),
        keyPem: PEM('PRIVATE KEY'),
      },
    ]);
  });

  it.each([
    ['bad YAML', { east: 'endpoints: [unclosed', ...files('east') }, /peer "east": not valid YAML/],
    ['not a mapping', { east: '- a\n- b\n', ...files('east') }, /must be a YAML mapping/],
    ['no endpoints', { east: yaml('[]'), ...files('east') }, /endpoints must be a non-empty list/],
    [
      'plain http',
      { east: yaml('["http://10.99.0.2:2379"]'), ...files('east') },
      /"http:\/\/10.99.0.2:2379" is not an https:\/\/ URL/,
    ],
    ['a missing file', { east: yaml('["https://10.99.0.2:2379"]') }, /has no entry east.etcd-client-ca.crt/],
    [
      'a file that is not PEM',
      { east: yaml('["https://h:1"]'), ...files('east'), 'east.etcd-client.key': 'secret' },
      /key-file .* is not a PEM file/,
    ],
    [
      'a bad name',
      { East_1: yaml('["https://h:1"]', '/d', 'East_1'), ...files('East_1') },
      /peer "East_1": the entry name is not a cluster name/,
    ],
  ])('reports %s for that peer only', (_what, entries, error) => {
    const set = parse({
      ...entries,
      north: yaml('["https://10.99.0.3:2379"]', '/x', 'north'),
      ...files('north'),
    });
    expect(set.peers.map((p) => p.name)).toEqual(['north']);
    expect(set.invalid).toHaveLength(1);
    expect(set.invalid[0]!.error).toMatch(error);
    expect(set.invalid[0]!.error).not.toContain('\n');
  });

  it('ignores entries with a dot (files, and the ..data links of a Secret volume)', () => {
    expect(parse({ '..data': 'x', 'east.etcd-client.crt': 'x' })).toEqual({ peers: [], invalid: [] });
  });
});

describe('secretEntries', () => {
  it('decodes base64 data and takes stringData as is', () => {
    const entries = secretEntries({
      data: { east: Buffer.from('endpoints: []').toString('base64') },
      stringData: { north: 'x' },
    });
    expect([...entries]).toEqual([
      ['east', 'endpoints: []'],
      ['north', 'x'],
    ]);
    expect(secretEntries(undefined).size).toBe(0);
  });
});

describe('planPeerChanges', () => {
  const peer = (name: string, endpoint = 'https://a:1'): PeerConfig => ({
    name,
    endpoints: [endpoint],
    caPem: 'c',
    certPem: 'c',
    keyPem: 'k',
  });
  it.each([
    ['nothing running', [], [peer('a')], { add: ['a'], update: [], remove: [] }],
    ['unchanged', [peer('a')], [peer('a')], { add: [], update: [], remove: [] }],
    ['new endpoint', [peer('a')], [peer('a', 'https://b:1')], { add: [], update: ['a'], remove: [] }],
    ['removed', [peer('a'), peer('b')], [peer('b')], { add: [], update: [], remove: ['a'] }],
  ])('%s', (_what, running, wanted, expected) => {
    const plan = planPeerChanges(new Map(running.map((p) => [p.name, p])), wanted);
    expect({
      add: plan.add.map((p) => p.name),
      update: plan.update.map((p) => p.name),
      remove: plan.remove,
    }).toEqual(expected);
  });

  it('turns a peer named like the local cluster into an invalid entry', () => {
    const set = withoutLocalCluster({ peers: [peer('west'), peer('east')], invalid: [] }, 'west');
    expect(set.peers.map((p) => p.name)).toEqual(['east']);
    expect(set.invalid[0]!.error).toMatch(/"west" is the local cluster's own name/);
  });
});

describe('clusterIdConflict', () => {
  const local = { name: 'west', id: 1 };
  it.each([
    [1, [], /is the ID of the local cluster "west"/],
    [2, [{ name: 'east', id: 2 }], /already used by the peer "east"/],
    [2, [{ name: 'south', id: 2 }], null], // its own claim
    [
      3,
      [
        { name: 'east', id: 2 },
        { name: 'north', id: null },
      ],
      null,
    ],
  ])('id %i with claims %j', (id, claimed, expected) => {
    const conflict = clusterIdConflict('south', id, local, claimed);
    if (expected === null) expect(conflict).toBeNull();
    else expect(conflict).toMatch(expected);
  });
});

describe('rejectionClass', () => {
  const key = serviceKey('east', 'default', 'x');
  const svc = (patch: Record<string, unknown>) =>
    JSON.stringify({
      cluster: 'east',
      namespace: 'default',
      name: 'x',
      frontends: {},
      backends: {},
      labels: {},
      selector: {},
      includeExternal: false,
      shared: true,
      clusterID: 2,
      ...patch,
    });
  it.each([
    ['too-large', svc({ labels: { a: 'x'.repeat(600_000) } })],
    ['malformed', '{not json'],
    ['key-mismatch', svc({ name: 'y' })],
    ['cluster-id', svc({ clusterID: 3 })],
    ['invalid-address', svc({ backends: { '10.0.0.300': {} } })],
    ['invalid-field', svc({ shared: 'yes' })],
  ])('%s', (expected, value) => {
    const decoded = validateRemoteRecord('service', key, value, { cluster: 'east', clusterID: 2 });
    expect(decoded.ok).toBe(false);
    expect(rejectionClass(key, (decoded as { reason: string }).reason)).toBe(expected);
  });

  it('classifies a key naming another cluster, whatever the key says', () => {
    const evil = serviceKey('north', 'default', 'exceeds the 1-byte limit');
    const decoded = validateRemoteRecord('service', evil, svc({}), { cluster: 'east', clusterID: 2 });
    expect(rejectionClass(evil, (decoded as { reason: string }).reason)).toBe('foreign-cluster');
  });
});

describe('RecordTable resync', () => {
  it('keeps every record through a resync and drops only what the new session did not list', () => {
    const table = new RecordTable<number>();
    table.upsert('a', 1);
    table.upsert('b', 2);
    table.beginResync();
    table.upsert('a', 10);
    table.upsert('c', 3);
    expect(table.values().sort((x, y) => x - y)).toEqual([2, 3, 10]);
    expect(table.endResync()).toEqual(['b']);
    expect([...table.entries()].sort()).toEqual([
      ['a', 10],
      ['c', 3],
    ]);
  });
});
