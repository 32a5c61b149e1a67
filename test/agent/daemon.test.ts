/**
 * The built agent daemon end to end: the local cluster is the official kube-apiserver
 * (test/harness/kube-apiserver.ts, its service range on loopback like the ClusterIPs), peer
 * "west" is a real etcd written as its clustermesh-apiserver would (on loopback), the datapath is
 * real (pinned maps, programs on a test cgroup), a client in that cgroup connects to the local
 * ClusterIP, and servers stand behind west's backend addresses in a network namespace of this
 * test, reached over a veth (a peer's backends must lie in its own pod CIDR, never on loopback).
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Datapath } from '../../lib/datapath/index.js';
import type { DatapathService } from '../../lib/datapath/types.js';
import type { ClusterService } from '../../lib/kvstore/types.js';
import { encodeIPCacheEntry } from '../../lib/kvstore/codecs.js';
import { identityKey, ipcacheKey } from '../../lib/kvstore/keys.js';
import { createTestCgroup, type TestCgroup } from '../harness/cgroup.js';
import { kubeBinariesRequirement, startKubeApiServer, type KubeApiServer } from '../harness/kube-apiserver.js';
import { TestNetns, waitFor } from '../harness/netns.js';
import { builtRequirement, describeRequiring, rootRequirement } from '../harness/requirements.js';
import type { SocketWorker } from '../datapath/worker-client.js';
import { AgentProcess, dumpMaps, killAndWait, startBackend, startClient, type Backend } from './agent-process.js';
import { packageRoot } from '../../native/index.js';
import { clusterService } from './fakes.js';
import { PeerCluster } from './peer.js';

/** the local cluster's service range; kube-apiserver gives its first address to the `kubernetes` Service */
const SERVICE_CIDR = '127.77.0.0/24';
const VIP = '127.77.0.11';
const PLAIN_VIP = '127.77.0.12';
const SOLO_VIP = '127.77.0.13';
/** west's pod CIDR, in the test's own namespace; the root end of the veth is .1 */
const WEST_POD_CIDR = '10.200.78.0/24';
const [ADDR_A, ADDR_B] = ['10.200.78.2', '10.200.78.3'];
const IDENTITY_LABELS = 'k8s:app=echo;k8s:io.cilium.k8s.policy.cluster=west;k8s:io.kubernetes.pod.namespace=default;';

let kube: KubeApiServer;
let west: PeerCluster;
let westPods: TestNetns | undefined;
let cgroup: TestCgroup;
let agent: AgentProcess | undefined;
let client: SocketWorker;
const servers = {} as Record<'A' | 'B', Backend>;
const workDir = mkdtempSync(join(tmpdir(), 'cm-agent-daemon-'));
const configDir = join(workDir, 'remotes');
const pinDir = `/sys/fs/bpf/cm-agent-test-${process.pid}`;
const workers: ChildProcess[] = [];
const REQUIREMENTS = [rootRequirement(), builtRequirement(join(packageRoot, 'dist'), ['agent/main.js']), kubeBinariesRequirement()];

function agentArgs(extra: string[] = []): string[] {
  return [
    '--cluster-name', 'east', '--cluster-id', '1', '--node-name', 'east-1',
    '--kubeconfig', join(workDir, 'kubeconfig'), '--clustermesh-config', configDir,
    '--bpf-pin-dir', pinDir, '--cgroup', cgroup.dir, '--no-routes',
    '--health-interval', '100ms', '--health-timeout', '300ms', ...extra,
  ];
}

function localService(name: string, ip: string, annotations: Record<string, string>) {
  return { apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'default', name, annotations }, spec: { clusterIP: ip, clusterIPs: [ip], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] } };
}

/** Each backend address has its own port in a ClusterService. */
function westEcho(): ClusterService {
  const svc = clusterService('west', 2, 'echo', [ADDR_A], { port: servers.A.port });
  return { ...svc, backends: { ...svc.backends, [ADDR_B]: { http: { Protocol: 'TCP', Port: servers.B.port } } } };
}

const echoInMaps = (maps: DatapathService[]) => maps.find((s) => s.vip === VIP)?.backends.map((b) => `${b.clusterId}:${b.addr}:${b.state}`) ?? [];

async function startAgent(extra: string[] = []): Promise<AgentProcess> {
  const a = await AgentProcess.start(agentArgs(extra));
  await a.waitReady();
  return a;
}

async function waitForEcho(expected: string[], what: string): Promise<void> {
  await waitFor(async () => JSON.stringify(echoInMaps(await dumpMaps(pinDir))) === JSON.stringify(expected), 15_000, what);
}

describeRequiring('the agent daemon on a real datapath, the official kube-apiserver and a peer’s etcd', REQUIREMENTS, () => {
  beforeAll(async () => {
    kube = await startKubeApiServer({ serviceCIDRs: [SERVICE_CIDR] });
    writeFileSync(join(workDir, 'kubeconfig'), kube.kubeconfig('east'));
    await kube.objects.create(localService('echo', VIP, { 'clustermesh.io/global': 'true' }));
    await kube.objects.create(localService('plain', PLAIN_VIP, {}));
    await kube.objects.create(localService('solo', SOLO_VIP, { 'clustermesh.io/global': 'true' }));

    westPods = TestNetns.create('cm-agent-west');
    const veth = `cmaw${process.pid % 100_000}`;
    execFileSync('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', westPods.name]);
    execFileSync('ip', ['addr', 'add', '10.200.78.1/24', 'dev', veth]);
    execFileSync('ip', ['link', 'set', veth, 'up']);
    for (const addr of [ADDR_A, ADDR_B]) westPods.addAddress(`${addr}/24`, 'eth0');
    westPods.ip('link', 'set', 'eth0', 'up');

    // One process per backend, so one can be killed abruptly.
    for (const [name, addr] of [['A', ADDR_A], ['B', ADDR_B]] as const) {
      servers[name] = await startBackend(addr, name, westPods);
      workers.push(servers[name].process);
    }
    const port = servers.A.port;

    west = await PeerCluster.start('west', 2);
    await west.putNode('west-worker', '10.200.79.1', WEST_POD_CIDR);
    await west.putService(westEcho());
    await west.putService(clusterService('west', 2, 'plain', [ADDR_A], { port }));
    await west.putService(clusterService('west', 2, 'solo', [ADDR_A], { port, shared: false }));
    const identity = (2 << 16) | 1;
    await west.client().put(identityKey(identity)).value(IDENTITY_LABELS);
    await west.client().put(ipcacheKey(ADDR_A)).value(
      encodeIPCacheEntry({ IP: ADDR_A, Mask: null, HostIP: '', ID: identity, K8sNamespace: 'default', K8sPodName: 'echo-a', NamedPorts: null }),
    );
    await west.writeConfigEntry(configDir);

    cgroup = createTestCgroup('cm-agent');
    const c = startClient(cgroup.dir);
    workers.push(c.process);
    client = c.worker;
  }, 60_000);

  afterAll(async () => {
    const steps: (() => unknown)[] = [
      () => agent?.kill(),
      () => Promise.all(workers.map(killAndWait)),
      () => westPods?.destroy(), // the veth goes with it
      () => Datapath.destroy(pinDir, cgroup?.dir),
      () => cgroup?.remove(),
      () => west?.stop(),
      () => kube?.close(),
      () => rmSync(workDir, { recursive: true, force: true }),
    ];
    // Every step runs even when one fails; the first failure is reported.
    const failures: unknown[] = [];
    for (const step of steps) await Promise.resolve().then(step).catch((err: unknown) => failures.push(err));
    if (failures.length > 0) throw failures[0];
  });

  /** The agent's maps, read through the pins as another process would. */
  async function readPinned<T>(read: (dp: Datapath) => T): Promise<T> {
    const dp = await Datapath.open({ pinDir });
    try {
      return read(dp);
    } finally {
      dp.close();
    }
  }

  it('programs west’s backends on the local ClusterIP; a client in the cgroup reaches them', async () => {
    agent = await startAgent();
    await waitForEcho([`2:${ADDR_A}:active`, `2:${ADDR_B}:active`], 'west’s backends in the maps');
    const maps = await dumpMaps(pinDir);
    // plain is not global here: not in the maps; solo is, but west does not share its backends.
    expect(maps.map((s) => [s.vip, s.backends.length])).toEqual([[VIP, 2], [SOLO_VIP, 0]]);
    const { reached, errors } = await client.tcpConnects(VIP, 80, 200);
    expect(errors).toEqual({});
    expect((reached.A ?? 0) + (reached.B ?? 0)).toBe(200);
    expect(reached.A).toBeGreaterThan(0);
    expect(reached.B).toBeGreaterThan(0);
    const status = await agent.status();
    expect(status.remotes).toEqual([expect.objectContaining({ name: 'west', connected: true, ready: true })]);
    expect(status.services.find((s) => s.name === 'plain')?.programmed).toBe(false);
    const identity = await agent.get(`/identity?ip=${ADDR_A}`);
    expect(JSON.parse(identity.body)).toMatchObject({ cluster: 'west', pod: 'echo-a', labels: IDENTITY_LABELS });
    expect(await readPinned((dp) => dp.lookupIpcache(ADDR_A))).toEqual({ identity: JSON.parse(identity.body).identity, clusterId: 2 });
    expect((await agent.get(`/identity?ip=${ADDR_B}`)).status).toBe(404);
    const metrics = (await agent.get('/metrics', agent.healthUrl)).body;
    expect(metrics).toMatch(/clustermesh_agent_remote_cluster_ready\{[^}]*cluster="west"[^}]*\} 1/);
    // the programs' counters, as the pinned map holds them (nothing here makes them move)
    const programEvents = [...metrics.matchAll(/^clustermesh_agent_datapath_program_events_total\{[^}]*event="(\w+)"[^}]*\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]);
    const stats = await readPinned((dp) => dp.programStats());
    expect(programEvents).toEqual([['sock_state_failed', stats.sockStateFailed], ['sock_peer_replaced', stats.sockPeerReplaced]]);
  });

  it('survives SIGKILL and a restart under continuous connects: no failed connect, no map write', async () => {
    const connects = client.tcpConnects(VIP, 80, 3000);
    await agent!.kill('SIGKILL');
    agent = await startAgent();
    await waitFor(async () => (await agent!.status()).remotes.every((r) => r.ready), 15_000, 'west to sync again');
    const result = await connects;
    expect(result.errors).toEqual({});
    expect((result.reached.A ?? 0) + (result.reached.B ?? 0)).toBe(3000);
    expect((await agent.status()).datapath).toMatchObject({ updates: 0, deletes: 0 });
  });

  it('quarantines a backend whose process was killed; traffic moves to the other', async () => {
    servers.B.process.kill('SIGKILL');
    await waitForEcho([`2:${ADDR_A}:active`, `2:${ADDR_B}:quarantined`], 'B quarantined');
    expect(await client.tcpConnects(VIP, 80, 100)).toEqual({ reached: { A: 100 }, errors: {} });
  });

  it('keeps the maps and the traffic while west’s etcd is down, and resyncs without a delete', async () => {
    const before = { maps: await dumpMaps(pinDir), totals: (await agent!.status()).datapath };
    await west.kill();
    await waitFor(async () => (await agent!.status()).remotes.every((r) => !r.connected), 15_000, 'the agent to notice');
    expect(await dumpMaps(pinDir)).toEqual(before.maps);
    expect(await client.tcpConnects(VIP, 80, 100)).toEqual({ reached: { A: 100 }, errors: {} });
    await west.restart();
    await waitFor(async () => (await agent!.status()).remotes.every((r) => r.ready), 20_000, 'west to sync again');
    expect(await dumpMaps(pinDir)).toEqual(before.maps);
    expect((await agent!.status()).datapath.deletes).toBe(before.totals.deletes);
  });

  it('drains a peer removed from the configuration at once', async () => {
    PeerCluster.removeConfigEntry(configDir, 'west');
    await waitForEcho([], 'west drained');
    await west.writeConfigEntry(configDir);
    await waitForEcho([`2:${ADDR_A}:active`, `2:${ADDR_B}:quarantined`], 'west back');
  });

  it('drops a silent peer’s backends after the cache TTL', async () => {
    await agent!.kill('SIGTERM');
    agent = await startAgent(['--peer-cache-ttl', '2s']);
    await waitFor(async () => (await agent!.status()).remotes.every((r) => r.ready), 15_000, 'west to sync');
    await west.kill();
    const killedAt = Date.now();
    await waitForEcho([], 'west’s backends to expire');
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(2000);
    await west.restart();
  });
});
