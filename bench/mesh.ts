/**
 * Mesh-scale benchmarks, run once, tables on stdout:
 *  1. Full sync at mesh scale: the built agent joins 254 mock peer clusters (255 clusters with the
 *     local one: every cluster ID) holding 250k remote endpoints in all, reading the peers directly
 *     (baseline) and through the kvstoremesh cache in the local etcd: time until its maps hold
 *     everything, and its peak RSS. The kvstoremesh (the built process) fills the cache first, as
 *     it would have before any agent starts; its own time and peak RSS are reported beside.
 *  2. Fan-in on a peer's etcd: N simulated agents (agent/remote's RemoteClusters, exactly what an
 *     agent runs) read one peer, directly and through the cache; the peer's etcd watchers (its
 *     `etcd_debugging_mvcc_watcher_total`) and TCP connections, and the local etcd's.
 * Mock clusters share etcd processes (each with its own name, ID, config, canaries, services and
 * node); identities and ipcache, which are not keyed by cluster, stay empty. Everything listens on
 * loopback; backends are loopback addresses nobody connects to. Auth is off on the mock etcds (the
 * users and grants are covered by test/kvstoremesh/).
 * Smaller runs: BENCH_MESH_PEERS=20 BENCH_MESH_ENDPOINTS=20000 BENCH_MESH_AGENTS=1,10.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import type { KubeApiServer } from '../test/harness/kube-apiserver.js';
import { Datapath } from '../lib/datapath/index.js';
import {
  encodeClusterConfig,
  encodeClusterService,
  encodeNode,
  encodeTimestamp,
  maskFromPrefixLength,
} from '../lib/kvstore/codecs.js';
import { createEtcdClient } from '../lib/kvstore/etcd.js';
import { NO_LOCAL_ADDRESSES } from '../lib/kvstore/ownership.js';
import {
  SYNCED_STATE_PREFIXES,
  clusterConfigKey,
  nodeKey,
  serviceKey,
  syncedCanaryKey,
} from '../lib/kvstore/keys.js';
import type { ClusterService } from '../lib/kvstore/types.js';
import { ADMIN_USER, LOCAL_READER_USER, remoteUserName } from '../lib/kvstore/users.js';
import { createMetricsRegistry } from '../lib/metrics.js';
import { DirectoryPeerSource } from '../lib/remotes/config-source.js';
import { packageRoot } from '../native/index.js';
import { RemoteClusters } from '../agent/remote/remote-clusters.js';
import { KVStoreMesh } from '../clustermesh-apiserver/kvstoremesh/kvstoremesh.js';
import { EtcdHarness, freePort } from '../test/harness/etcd.js';
import { createTestCgroup } from '../test/harness/cgroup.js';
import { AgentProcess } from '../test/agent/agent-process.js';
import { writePeerEntry } from '../test/agent-remote/helpers.js';
import { createGlobalServices, startLocalKube } from './kube.js';
import { type BenchResult, envInt, envInts, figure, percentile, runStandalone } from './report.js';

const PEERS = envInt('BENCH_MESH_PEERS', 254);
const ENDPOINTS = envInt('BENCH_MESH_ENDPOINTS', 250_000);
const ETCDS = envInt('BENCH_MESH_ETCDS', 6);
const AGENT_COUNTS = envInts('BENCH_MESH_AGENTS', [1, 10, 50, 100, 200]);
const REPS = envInt('BENCH_MESH_REPS', 3);
const BACKENDS = 4;
const SERVICES = Math.ceil(ENDPOINTS / PEERS / BACKENDS);
const LOCAL = { name: 'local', id: 1 };
const PORT = 8080;
const SYNC_TIMEOUT_MS = 600_000;
const KVSTOREMESH_MAIN = join(packageRoot, 'dist/clustermesh-apiserver/kvstoremesh/main.js');
const silent = pino({ level: 'silent' });

interface MockCluster {
  name: string;
  id: number;
  host: EtcdHarness;
}

const peerName = (p: number) => `peer-${String(p).padStart(3, '0')}`;

/**
 * Peer p owns the pod CIDR 10.(128 + p/64).((p%64)*4).0/22 (its node record claims it): peers may
 * publish only backends they own (lib/kvstore/ownership.ts). Nothing routes these addresses.
 */
const podCidrBase = (p: number) => (10 << 24) + ((128 + (p >> 6)) << 16) + ((p & 63) << 10);
const ipv4 = (n: number) => [n >>> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255].join('.');
if (SERVICES * BACKENDS > 1022)
  throw new Error(`BENCH_MESH_ENDPOINTS / BENCH_MESH_PEERS exceeds the 1022 endpoints a peer's /22 holds`);

function clusterService(cluster: MockCluster, p: number, s: number): ClusterService {
  const port = { http: { Protocol: 'TCP' as const, Port: PORT } };
  return {
    cluster: cluster.name,
    namespace: 'default',
    name: `svc-${s}`,
    frontends: {},
    backends: Object.fromEntries(
      Array.from({ length: BACKENDS }, (_, b) => [ipv4(podCidrBase(p) + 1 + s * BACKENDS + b), port]),
    ),
    labels: {},
    selector: {},
    includeExternal: true,
    shared: true,
    clusterID: cluster.id,
  };
}

/** Publishes a mock cluster as its clustermesh-apiserver would: services, a node, config, canaries. */
async function publish(admin: Etcd3, cluster: MockCluster, p: number): Promise<void> {
  const puts: Array<[string, string]> = [];
  for (let s = 0; s < SERVICES; s++)
    puts.push([
      serviceKey(cluster.name, 'default', `svc-${s}`),
      encodeClusterService(clusterService(cluster, p, s)),
    ]);
  puts.push([
    nodeKey(cluster.name, 'worker'),
    encodeNode({
      Name: 'worker',
      Cluster: cluster.name,
      IPAddresses: [{ Type: 'InternalIP', IP: `10.140.${p}.2` }],
      IPv4AllocCIDR: { IP: ipv4(podCidrBase(p)), Mask: maskFromPrefixLength(22, 4) },
      IPv6AllocCIDR: null,
      ClusterID: cluster.id,
    }),
  ]);
  for (let i = 0; i < puts.length; i += 128)
    await Promise.all(puts.slice(i, i + 128).map(([key, value]) => admin.put(key).value(value).exec()));
  await admin.put(clusterConfigKey(cluster.name)).value(
    encodeClusterConfig({
      id: cluster.id,
      capabilities: { syncedCanaries: true, maxConnectedClusters: 255 },
    }),
  );
  for (const prefix of SYNCED_STATE_PREFIXES)
    await admin.put(syncedCanaryKey(cluster.name, prefix)).value(encodeTimestamp());
}

function memoryMiB(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { rss: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 };
}

async function poll(
  what: string,
  condition: () => Promise<boolean>,
  timeoutMs = SYNC_TIMEOUT_MS,
  everyMs = 250,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

const metricValues = (body: string, name: string): number[] =>
  [...body.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'gm'))].map((m) => Number(m[1]));

async function httpText(url: string): Promise<string> {
  const res = await fetch(url).catch(() => null);
  return res?.ok ? res.text() : '';
}

// ---------------------------------------------------------------- 1. full sync

interface SyncRun {
  seconds: number;
  peak: number;
  /** CPU the agent used until synced, and every etcd meanwhile: less sensitive than wall time to a shared machine */
  agentCpu: number;
  etcdCpu: number;
  /** datapath passes (merge → reconcile) the agent ran until synced */
  passes: number;
}

/** user + system CPU seconds of a process so far (/proc/<pid>/stat, clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface MeshSetup {
  workDir: string;
  kubeconfig: string;
  local: EtcdHarness;
  hosts: EtcdHarness[];
  clusters: MockCluster[];
  directDir: string;
  cachedDir: string;
  meshDir: string;
  publishSeconds: number;
}

async function setUpMesh(workDir: string, kube: KubeApiServer): Promise<MeshSetup> {
  const hosts: EtcdHarness[] = [];
  const setup: MeshSetup = {
    workDir,
    kubeconfig: join(workDir, 'kubeconfig'),
    local: await EtcdHarness.start(),
    hosts,
    clusters: [],
    directDir: join(workDir, 'direct'),
    cachedDir: join(workDir, 'cached'),
    meshDir: join(workDir, 'mesh'),
    publishSeconds: 0,
  };
  for (let e = 0; e < Math.min(ETCDS, PEERS); e++) hosts.push(await EtcdHarness.start());
  await createGlobalServices(kube, SERVICES);
  writeFileSync(setup.kubeconfig, kube.kubeconfig(LOCAL.name));
  const t0 = performance.now();
  const admins = await Promise.all(
    hosts.map(async (host) => createEtcdClient(await host.clientConfig('root'))),
  );
  try {
    for (let p = 0; p < PEERS; p++)
      setup.clusters.push({ name: peerName(p), id: p + 2, host: hosts[p % hosts.length]! });
    // one writer per etcd process, in parallel
    await Promise.all(
      hosts.map(async (host, h) => {
        for (const [p, cluster] of setup.clusters.entries())
          if (cluster.host === host) await publish(admins[h]!, cluster, p);
      }),
    );
  } finally {
    admins.forEach((admin) => admin.close());
  }
  setup.publishSeconds = (performance.now() - t0) / 1000;
  const reader = await setup.local.clientCert(LOCAL_READER_USER);
  for (const cluster of setup.clusters) {
    const cert = await cluster.host.clientCert(remoteUserName(LOCAL.name));
    await writePeerEntry(
      setup.directDir,
      cluster.name,
      cluster.host.endpoints,
      cluster.host.ca.certPem,
      cert,
    );
    await writePeerEntry(setup.meshDir, cluster.name, cluster.host.endpoints, cluster.host.ca.certPem, cert);
    await writePeerEntry(
      setup.cachedDir,
      cluster.name,
      setup.local.endpoints,
      setup.local.ca.certPem,
      reader,
    );
  }
  return setup;
}

/** The built kvstoremesh as a process; resolves once every peer is synced into the cache. */
async function startKvstoremesh(
  setup: MeshSetup,
): Promise<{ child: ChildProcess; seconds: number; peak: number }> {
  if (!existsSync(KVSTOREMESH_MAIN))
    throw new Error(`${KVSTOREMESH_MAIN} is missing: run \`npm run build\` first`);
  const admin = await setup.local.clientCert(ADMIN_USER);
  const file = (name: string, text: string) => (
    writeFileSync(join(setup.workDir, name), text, { mode: 0o600 }),
    join(setup.workDir, name)
  );
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    [
      KVSTOREMESH_MAIN,
      '--cluster-name',
      LOCAL.name,
      '--cluster-id',
      String(LOCAL.id),
      '--etcd-endpoints',
      setup.local.endpoints.join(','),
      '--etcd-ca',
      file('local-ca.crt', setup.local.ca.certPem),
      '--etcd-cert',
      file('admin.crt', admin.certPem),
      '--etcd-key',
      file('admin.key', admin.keyPem),
      '--clustermesh-config',
      setup.meshDir,
      '--kubeconfig',
      setup.kubeconfig,
      '--health-addr',
      `127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, LOG_LEVEL: 'warn' } },
  );
  const synced = async () => {
    if (child.exitCode !== null) throw new Error(`kvstoremesh exited with ${child.exitCode}`);
    const body = await httpText(`http://127.0.0.1:${port}/metrics`);
    return metricValues(body, 'clustermesh_kvstoremesh_peer_synced').filter((v) => v === 1).length === PEERS;
  };
  await poll('the kvstoremesh to cache every peer', synced);
  return { child, seconds: (performance.now() - t0) / 1000, peak: memoryMiB(child.pid!).peak };
}

async function agentFullSync(setup: MeshSetup, configDir: string): Promise<SyncRun> {
  const cgroup = createTestCgroup('cm-bench-mesh');
  const pinDir = `/sys/fs/bpf/cm-bench-mesh-${process.pid}`;
  let agent: AgentProcess | undefined;
  const etcds = [setup.local, ...setup.hosts].map((etcd) => etcd.pid!);
  const etcdCpu = () => etcds.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  try {
    const etcdCpu0 = etcdCpu();
    const t0 = performance.now();
    agent = await AgentProcess.start([
      '--cluster-name',
      LOCAL.name,
      '--cluster-id',
      String(LOCAL.id),
      '--node-name',
      'bench',
      '--kubeconfig',
      setup.kubeconfig,
      '--clustermesh-config',
      configDir,
      '--bpf-pin-dir',
      pinDir,
      '--cgroup',
      cgroup.dir,
      '--no-routes',
      '--no-health-checks',
    ]);
    const wanted = { service: SERVICES, backend: SERVICES * BACKENDS * PEERS };
    let peak = 0;
    await poll('the agent to program every backend', async () => {
      peak = Math.max(peak, memoryMiB(agent!.pid!).peak);
      const body = (await agent!.get('/metrics', agent!.healthUrl).catch(() => ({ body: '' }))).body;
      const read = (kind: string) =>
        Number(
          new RegExp(`clustermesh_agent_datapath_entries\\{kind="${kind}"[^}]*\\} (\\d+)`).exec(body)?.[1] ??
            0,
        );
      return read('service') === wanted.service && read('backend') === wanted.backend;
    });
    const seconds = (performance.now() - t0) / 1000;
    return {
      seconds,
      peak: Math.max(peak, memoryMiB(agent.pid!).peak),
      agentCpu: cpuSeconds(agent.pid!),
      etcdCpu: etcdCpu() - etcdCpu0,
      passes: (await agent.status()).datapath.reconciles,
    };
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${agent?.logs().split('\n').slice(-5).join('\n') ?? ''}`);
  } finally {
    await agent?.kill('SIGTERM');
    try {
      Datapath.destroy(pinDir, cgroup.dir);
    } finally {
      await cgroup.remove();
    }
  }
}

// ---------------------------------------------------------------- 2. fan-in on a peer's etcd

interface EtcdLoad {
  watchers: number;
  connections: number;
}

/** The etcd's own watcher gauge (client URL /metrics, as root) and its established TCP connections. */
async function etcdLoad(etcd: EtcdHarness): Promise<EtcdLoad> {
  const cert = await etcd.clientCert('root');
  const body = await new Promise<string>((resolve, reject) => {
    const req = request(
      `${etcd.endpoint}/metrics`,
      { ca: etcd.ca.certPem, cert: cert.certPem, key: cert.keyPem, checkServerIdentity: () => undefined },
      (res) => {
        let text = '';
        res
          .setEncoding('utf8')
          .on('data', (chunk: string) => (text += chunk))
          .on('end', () => resolve(text));
      },
    );
    req.on('error', reject).end();
  });
  const sockets = execFileSync('ss', ['-Htn', 'state', 'established', `( sport = :${etcd.clientPort} )`], {
    encoding: 'utf8',
  });
  return {
    watchers: metricValues(body, 'etcd_debugging_mvcc_watcher_total')[0] ?? NaN,
    connections: sockets.split('\n').filter(Boolean).length,
  };
}

/** Both etcds' load once two readings 300 ms apart agree (watch streams open asynchronously). */
async function settledLoad(
  peer: EtcdHarness,
  local: EtcdHarness,
): Promise<{ peer: EtcdLoad; local: EtcdLoad }> {
  const read = async () => ({ peer: await etcdLoad(peer), local: await etcdLoad(local) });
  let last = await read();
  for (let i = 0; i < 50; i++) {
    await new Promise((resolve) => setTimeout(resolve, 300));
    const now = await read();
    if (JSON.stringify(now) === JSON.stringify(last)) return now;
    last = now;
  }
  return last;
}

interface FanInRow {
  agents: number;
  mode: 'direct' | 'cached';
  peer: EtcdLoad;
  local: EtcdLoad;
}

async function fanIn(workDir: string): Promise<FanInRow[]> {
  const [peerEtcd, local] = [await EtcdHarness.start(), await EtcdHarness.start()];
  const peer: MockCluster = { name: 'peer-solo', id: 2, host: peerEtcd };
  const directDir = join(workDir, 'fan-direct');
  const cachedDir = join(workDir, 'fan-cached');
  const meshDir = join(workDir, 'fan-mesh');
  let mesh: KVStoreMesh | undefined;
  const rows: FanInRow[] = [];
  try {
    const admin = createEtcdClient(await peerEtcd.clientConfig('root'));
    await publish(admin, peer, 0).finally(() => admin.close());
    const cert = await peerEtcd.clientCert(remoteUserName(LOCAL.name));
    await writePeerEntry(directDir, peer.name, peerEtcd.endpoints, peerEtcd.ca.certPem, cert);
    await writePeerEntry(meshDir, peer.name, peerEtcd.endpoints, peerEtcd.ca.certPem, cert);
    await writePeerEntry(
      cachedDir,
      peer.name,
      local.endpoints,
      local.ca.certPem,
      await local.clientCert(LOCAL_READER_USER),
    );

    const measure = async (mode: FanInRow['mode'], dir: string, agents: number) => {
      const remotes = Array.from(
        { length: agents },
        () =>
          new RemoteClusters({
            localCluster: LOCAL,
            source: new DirectoryPeerSource({ dir, log: silent }),
            localAddresses: () => NO_LOCAL_ADDRESSES,
            log: silent,
            metrics: createMetricsRegistry(),
          }),
      );
      try {
        await Promise.all(remotes.map((r) => r.start()));
        await poll(
          `${agents} simulated agents synced (${mode})`,
          async () => remotes.every((r) => r.status()[0]?.ready === true),
          120_000,
          50,
        );
        rows.push({ agents, mode, ...(await settledLoad(peerEtcd, local)) });
      } finally {
        await Promise.all(remotes.map((r) => r.stop()));
      }
    };
    rows.push({ agents: 0, mode: 'direct', ...(await settledLoad(peerEtcd, local)) });
    for (const agents of AGENT_COUNTS) await measure('direct', directDir, agents);
    mesh = new KVStoreMesh({
      cluster: LOCAL,
      etcd: await local.clientConfig(ADMIN_USER),
      source: new DirectoryPeerSource({ dir: meshDir, log: silent }),
      local: { current: () => NO_LOCAL_ADDRESSES, onChange: () => () => undefined },
      log: silent,
      registry: createMetricsRegistry(),
    });
    await mesh.start();
    await poll('the cache of peer-solo', async () => mesh!.status()[0]?.synced === true, 60_000, 50);
    rows.push({ agents: 0, mode: 'cached', ...(await settledLoad(peerEtcd, local)) });
    for (const agents of AGENT_COUNTS) await measure('cached', cachedDir, agents);
    return rows;
  } finally {
    await mesh?.stop();
    await Promise.all([peerEtcd.stop(), local.stop()]);
  }
}

// ---------------------------------------------------------------- report

interface MeshRun {
  endpoints: number;
  publishSeconds: number;
  direct: SyncRun[];
  cached: SyncRun[];
  kvstoremesh: { seconds: number; peak: number };
  fanIn: FanInRow[];
}

function results(run: MeshRun): BenchResult {
  const s = (n: number) => n.toFixed(1);
  const mib = (n: number) => n.toFixed(0);
  const fan = (mode: FanInRow['mode']) => run.fanIn.filter((r) => r.mode === mode);
  const largest = (mode: FanInRow['mode']) => fan(mode).at(-1)!;
  const median = (runs: SyncRun[], pick: (r: SyncRun) => number) => percentile(runs.map(pick), 50);
  const medians = (runs: SyncRun[]) => ({
    seconds: median(runs, (r) => r.seconds),
    peak: median(runs, (r) => r.peak),
    agentCpu: median(runs, (r) => r.agentCpu),
    etcdCpu: median(runs, (r) => r.etcdCpu),
    passes: median(runs, (r) => r.passes),
  });
  const direct = medians(run.direct);
  const cached = medians(run.cached);
  const each = (runs: SyncRun[], pick: (r: SyncRun) => number, digits: number) =>
    runs.map((r) => pick(r).toFixed(digits)).join(', ');
  return {
    name: 'mesh',
    tables: [
      {
        title: `Mesh full sync: an agent joins ${PEERS} peer clusters, ${run.endpoints.toLocaleString('en')} remote endpoints`,
        notes: [
          `${PEERS} mock clusters (IDs 2..${PEERS + 1}) on ${Math.min(ETCDS, PEERS)} etcd processes, ${SERVICES} global services × ${BACKENDS} backends each (published in ${s(run.publishSeconds)} s); the built agent from spawn until its metrics count every frontend and backend in the maps; peak RSS = VmHWM`,
          'the kvstoremesh (built process) fills the local etcd first and keeps running through every agent run, so both modes share the same background; its own time to cache every peer and peak RSS are in the last row',
          `${REPS} runs per mode, alternating direct and cached; median, each run in brackets. Wall times depend on what else the shared machine runs (load average ${loadavg()
            .map((l) => l.toFixed(1))
            .join(', ')} at the end); CPU seconds much less`,
          'goals: < 30 s and < 1 GiB',
        ],
        columns: [
          'agent reads',
          'time to synced maps (s)',
          'agent CPU (s)',
          'etcd CPU meanwhile (s)',
          'agent peak RSS (MiB)',
          'datapath passes',
          'etcd connections opened by the agent',
        ],
        rows: [
          [
            'every peer directly (baseline)',
            `${s(direct.seconds)} [${each(run.direct, (r) => r.seconds, 1)}]`,
            `${s(direct.agentCpu)} [${each(run.direct, (r) => r.agentCpu, 1)}]`,
            `${s(direct.etcdCpu)} [${each(run.direct, (r) => r.etcdCpu, 1)}]`,
            `${mib(direct.peak)} [${each(run.direct, (r) => r.peak, 0)}]`,
            `${direct.passes} [${each(run.direct, (r) => r.passes, 0)}]`,
            PEERS,
          ],
          [
            'the kvstoremesh cache in the local etcd',
            `${s(cached.seconds)} [${each(run.cached, (r) => r.seconds, 1)}]`,
            `${s(cached.agentCpu)} [${each(run.cached, (r) => r.agentCpu, 1)}]`,
            `${s(cached.etcdCpu)} [${each(run.cached, (r) => r.etcdCpu, 1)}]`,
            `${mib(cached.peak)} [${each(run.cached, (r) => r.peak, 0)}]`,
            `${cached.passes} [${each(run.cached, (r) => r.passes, 0)}]`,
            PEERS,
          ],
          [
            '(kvstoremesh: every peer → local cache)',
            s(run.kvstoremesh.seconds),
            '-',
            '-',
            mib(run.kvstoremesh.peak),
            '-',
            `${PEERS} (to the peers) + 1`,
          ],
        ],
      },
      {
        title: "Fan-in on one peer's etcd as the node count grows",
        notes: [
          "N simulated agents (agent/remote's RemoteClusters each) reading one peer with " +
            `${SERVICES} services; watchers = the etcd's etcd_debugging_mvcc_watcher_total, connections = established TCP to its client port`,
          'cached: the kvstoremesh (in the bench process) reads the peer once; the agents read the local etcd',
        ],
        columns: [
          'agents',
          'mode',
          'peer etcd watchers',
          'peer etcd connections',
          'local etcd watchers',
          'local etcd connections',
        ],
        rows: run.fanIn.map((r) => [
          r.agents,
          r.mode,
          r.peer.watchers,
          r.peer.connections,
          r.local.watchers,
          r.local.connections,
        ]),
      },
    ],
    figures: [
      figure(
        'mesh.fullsync.cached.seconds',
        `agent full sync through the cache, ${PEERS} peers (median)`,
        cached.seconds,
        's',
        { what: 'reading every peer directly', value: direct.seconds },
      ),
      figure(
        'mesh.fullsync.cached.peak-rss',
        'agent peak RSS through the cache (median)',
        cached.peak,
        'MiB',
        { what: 'reading every peer directly', value: direct.peak },
      ),
      figure(
        'mesh.fanin.peer-watchers',
        `peer etcd watchers with ${largest('cached').agents} agents, cached`,
        largest('cached').peer.watchers,
        'watchers',
        {
          what: 'the same agents reading the peer directly',
          value: largest('direct').peer.watchers,
        },
      ),
    ],
  };
}

/** Runs the mesh benchmarks (root, bpffs mounted, `npm run build` done). */
export async function runMeshBench(): Promise<BenchResult> {
  const workDir = mkdtempSync(join(tmpdir(), 'cm-bench-mesh-'));
  const kube = await startLocalKube();
  let setup: MeshSetup | undefined;
  let kvstoremesh: ChildProcess | undefined;
  try {
    setup = await setUpMesh(workDir, kube);
    const mesh = await startKvstoremesh(setup);
    kvstoremesh = mesh.child;
    const direct: SyncRun[] = [];
    const cached: SyncRun[] = [];
    for (let rep = 0; rep < REPS; rep++) {
      direct.push(await agentFullSync(setup, setup.directDir));
      cached.push(await agentFullSync(setup, setup.cachedDir));
    }
    kvstoremesh.kill('SIGTERM');
    const fanInRows = await fanIn(workDir);
    return results({
      endpoints: PEERS * SERVICES * BACKENDS,
      publishSeconds: setup.publishSeconds,
      direct,
      cached,
      kvstoremesh: { seconds: mesh.seconds, peak: mesh.peak },
      fanIn: fanInRows,
    });
  } finally {
    if (kvstoremesh && kvstoremesh.exitCode === null) kvstoremesh.kill('SIGKILL');
    await Promise.all([setup?.local.stop(), ...(setup?.hosts ?? []).map((h) => h.stop())]);
    await kube.close();
    rmSync(workDir, { recursive: true, force: true });
  }
}

runStandalone(import.meta.url, runMeshBench);
