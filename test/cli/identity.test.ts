/**
 * `clustermesh identity IP`: the pure checks, decision and formatting as tables, then the built
 * CLI against the official kube-apiserver (test/harness/kube-apiserver.ts) whose agent pods point
 * at real agent status servers (agent/server.ts over an IdentityIndex) on loopback.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IdentityIndex } from '../../agent/identities.js';
import { serveStatus, type ListeningServer } from '../../agent/server.js';
import { decideIdentity, formatIdentity, identityJson, parseIdentityIp, type IdentityProbe } from '../../cli/identity.js';
import type { IdentityRecord } from '../../lib/agent-api.js';
import { UserError } from '../../lib/errors.js';
import { maskFromPrefixLength } from '../../lib/kvstore/codecs.js';
import { kubeBinariesRequirement, startKubeApiServer, type KubeApiServer } from '../harness/kube-apiserver.js';
import { describeRequiring } from '../harness/requirements.js';
import { startAll } from '../harness/start-all.js';
import { cliBuiltRequirement, errorLines, runCli, writeKubeconfig } from './helpers.js';

const NS = 'clustermesh-system';
const LABELS = 'k8s:app=echo;k8s:io.cilium.k8s.policy.cluster=west;k8s:io.kubernetes.pod.namespace=apps;';
const POD: IdentityRecord = {
  prefix: '10.102.1.5',
  cluster: 'west',
  clusterId: 2,
  identity: 0x20001,
  labels: LABELS,
  namespace: 'apps',
  pod: 'echo-1',
  hostIP: '10.99.0.3',
};
const RANGE: IdentityRecord = { ...POD, prefix: '10.102.0.0/16', identity: 0x20002, labels: null, namespace: '', pod: '', hostIP: '' };

describe('pure', () => {
  it.each([
    ['10.102.1.5', '10.102.1.5'],
    ['FD99:102:0::5', 'fd99:102::5'],
  ])('takes %s as %s', (text, ip) => expect(parseIdentityIp(text)).toBe(ip));

  it.each(['10.102.1.0/24', '10.102.1', 'west-pod', '010.1.2.3', ''])('refuses %j in one line', (text) => {
    expect(() => parseIdentityIp(text)).toThrow(new UserError(`"${text}" is not an IP address: pass one IPv4 or IPv6 address, e.g. clustermesh identity 10.102.1.5`));
  });

  const found = (node: string): IdentityProbe => ({ node, record: POD });
  const unclaimed = (node: string): IdentityProbe => ({ node, unclaimed: true });
  const failed = (node: string, error = 'ECONNREFUSED'): IdentityProbe => ({ node, error });

  it.each([
    ['a claim wins over silence and refusals', [failed('n1'), unclaimed('n2'), found('n3')], { node: 'n3' }],
    ['the first claim answers', [found('n1'), found('n2')], { node: 'n1' }],
  ])('decides: %s', (_name, probes, expected) => {
    expect(decideIdentity('10.102.1.5', 'east', probes)).toMatchObject({ ip: '10.102.1.5', record: POD, ...expected });
  });

  it.each([
    ['nobody claims it', [unclaimed('n1'), failed('n2')], 'no cluster of the mesh claims 10.9.9.9 (asked the agents of context east)'],
    ['no agent answered', [failed('n1'), failed('n2', 'HTTP 500 from http://x/identity')], 'no agent of context east answered (n1: ECONNREFUSED; n2: HTTP 500 from http://x/identity): check clustermesh status --context east'],
    ['there are no agents', [], 'no clustermesh agents found in context east: check the clustermesh-agent DaemonSet'],
  ])('fails in one line (exit 1) when %s', (_name, probes, message) => {
    expect(() => decideIdentity('10.9.9.9', 'east', probes)).toThrow(new UserError(message));
  });

  it('formats a pod', () => {
    expect(formatIdentity({ ip: '10.102.1.5', node: 'east-worker', record: POD })).toBe(
      [
        '10.102.1.5: cluster west (ID 2), pod apps/echo-1',
        '  identity 131073',
        '  labels',
        '    k8s:app=echo',
        '    k8s:io.cilium.k8s.policy.cluster=west',
        '    k8s:io.kubernetes.pod.namespace=apps',
        '  entry 10.102.1.5 on host 10.99.0.3 (answered by the agent on east-worker)',
      ].join('\n'),
    );
    expect(identityJson({ ip: '10.102.1.5', node: 'east-worker', record: POD })).toEqual({
      ip: '10.102.1.5',
      cluster: 'west',
      clusterId: 2,
      namespace: 'apps',
      pod: 'echo-1',
      identity: 0x20001,
      labels: ['k8s:app=echo', 'k8s:io.cilium.k8s.policy.cluster=west', 'k8s:io.kubernetes.pod.namespace=apps'],
      prefix: '10.102.1.5',
      hostIP: '10.99.0.3',
      answeredBy: 'east-worker',
    });
  });

  it('formats a range whose identity is unknown', () => {
    expect(formatIdentity({ ip: '10.102.7.7', node: 'n1', record: RANGE })).toBe(
      [
        '10.102.7.7: cluster west (ID 2), no pod',
        '  identity 131074 (labels unknown: west published no identity 131074)',
        '  entry 10.102.0.0/16 (answered by the agent on n1)',
      ].join('\n'),
    );
    expect(identityJson({ ip: '10.102.7.7', node: 'n1', record: RANGE }).labels).toBeNull();
  });
});

describeRequiring('the command against agents on loopback', [cliBuiltRequirement(), kubeBinariesRequirement()], () => {
  const index = new IdentityIndex([
    {
      name: 'west',
      id: 2,
      identities: new Map([[0x20001, LABELS]]),
      ipcache: [
        { IP: '10.102.1.5', Mask: null, HostIP: '10.99.0.3', ID: 0x20001, K8sNamespace: 'apps', K8sPodName: 'echo-1' },
        { IP: '10.102.0.0', Mask: maskFromPrefixLength(16, 4), HostIP: '', ID: 0x20002, K8sNamespace: '', K8sPodName: '' },
      ],
    },
  ]);
  let dir: string;
  let kubeconfig: string;
  let east: KubeApiServer;
  let dark: KubeApiServer;
  let bare: KubeApiServer;
  let agent: ListeningServer;

  const cli = (...args: string[]) => runCli(['--kubeconfig', kubeconfig, ...args]);

  /** A port nothing listens on: bound once, then released. */
  async function closedPort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise((resolve) => server.close(resolve));
    return port;
  }

  /** The agent pods as a kubelet would have reported them running (status written after create). */
  async function installAgents(server: KubeApiServer, ports: number[]): Promise<void> {
    await server.objects.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { namespace: NS, name: 'clustermesh-config' }, data: { 'cluster-name': 'east', 'cluster-id': '1' } });
    for (const [i, port] of ports.entries()) {
      await server.objects.create({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { namespace: NS, name: `clustermesh-agent-${i}`, labels: { 'app.kubernetes.io/name': 'clustermesh-agent' } },
        spec: { nodeName: `east-worker${i}`, containers: [{ name: 'agent', image: 'clustermesh-agent', args: [`--status-addr=127.0.0.1:${port}`] }] },
        status: { phase: 'Running', hostIP: '127.0.0.1', hostIPs: [{ ip: '127.0.0.1' }] },
      });
    }
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cm-cli-identity-'));
    kubeconfig = join(dir, 'kubeconfig');
    [east, dark, bare] = await startAll(startKubeApiServer, startKubeApiServer, startKubeApiServer);
    writeKubeconfig(kubeconfig, { east, dark, bare });
    agent = await serveStatus({ host: '127.0.0.1', port: 0 }, { status: () => ({}), identity: (ip) => index.lookup(ip) });
    const silent = await closedPort();
    await installAgents(east, [silent, Number(new URL(agent.url).port)]);
    await installAgents(dark, [silent]);
  });

  afterAll(async () => {
    await agent?.close();
    await Promise.all([east, dark, bare].filter(Boolean).map((s) => s.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints the cluster, pod and labels of a remote pod address, also as JSON', async () => {
    const text = await cli('identity', '10.102.1.5', '--context', 'east');
    expect([text.code, text.stdout.split('\n')[0]]).toEqual([0, '10.102.1.5: cluster west (ID 2), pod apps/echo-1']);
    const json = await cli('identity', '10.102.200.9', '--context', 'east', '-o', 'json');
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ cluster: 'west', prefix: '10.102.0.0/16', pod: '', identity: 0x20002, answeredBy: 'east-worker1' });
  });

  it.each([
    ['an address no cluster claims', ['identity', '10.9.9.9', '--context', 'east'], 'clustermesh: no cluster of the mesh claims 10.9.9.9 (asked the agents of context east)'],
    ['a bad address', ['identity', 'nope', '--context', 'east'], 'clustermesh: "nope" is not an IP address: pass one IPv4 or IPv6 address, e.g. clustermesh identity 10.102.1.5'],
    ['agents that do not answer', ['identity', '10.102.1.5', '--context', 'dark'], /^clustermesh: no agent of context dark answered \(east-worker0: ECONNREFUSED\)/],
    ['a cluster without clustermesh', ['identity', '10.102.1.5', '--context', 'bare'], 'clustermesh: clustermesh is not installed in context bare (no ConfigMap clustermesh-system/clustermesh-config): run clustermesh install --context bare'],
  ])('refuses %s in one line, exit 1', async (_name, args, message) => {
    const result = await cli(...args);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(errorLines(result)).toEqual([typeof message === 'string' ? message : expect.stringMatching(message)]);
  });
});
