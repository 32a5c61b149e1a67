/**
 * Agent benchmarks (issue 4 "Measure"), run once, tables on stdout:
 *  1. Propagation: a ClusterService update in the peer's etcd → the agent's datapath reconcile that
 *     writes it to the maps, over ≥1,000 changes; baseline: a raw etcd watch in the same process
 *     seeing the same put.
 *  2. Full sync: the built daemon joins 16 peers × 2,000 global services × 4 backends: time until
 *     its maps hold everything, and its RSS then.
 * Everything listens on loopback; backends are addresses inside the pod CIDRs of the peers' node
 * records (the agent accepts nothing else: lib/kvstore/ownership.ts) that nobody connects to.
 * Smaller runs: BENCH_AGENT_CHANGES=200 BENCH_AGENT_PEERS=4 BENCH_AGENT_SERVICES=500.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Datapath } from '../lib/datapath/index.js';
import type { DatapathService } from '../lib/datapath/types.js';
import { encodeClusterService } from '../lib/kvstore/codecs.js';
import { serviceKey } from '../lib/kvstore/keys.js';
import type { ClusterService } from '../lib/kvstore/types.js';
import { createMetricsRegistry } from '../lib/metrics.js';
import { Agent, NO_HEALTH_CHECKS } from '../agent/agent.js';
import { LocalInformers } from '../agent/local/informers.js';
import { createRemoteClusters } from '../agent/remote-wiring.js';
import { createTestCgroup } from '../test/harness/cgroup.js';
import { waitFor } from '../test/harness/netns.js';
import { AgentProcess } from '../test/agent/agent-process.js';
import { PeerCluster } from '../test/agent/peer.js';
import { createGlobalServices, globalService, localServiceIP, startLocalKube } from './kube.js';
import { type BenchResult, type Distribution, distribution, envInt, figure, runStandalone } from './report.js';

const CHANGES = envInt('BENCH_AGENT_CHANGES', 1000);
const PEERS = envInt('BENCH_AGENT_PEERS', 16);
const SERVICES = envInt('BENCH_AGENT_SERVICES', 2000);
const BACKENDS = 4;
const PORT = 8080;
const silent = pino({ level: 'silent' });

function clusterServiceOf(cluster: string, id: number, name: string, backends: string[]): ClusterService {
  return {
    cluster,
    namespace: 'default',
    name,
    frontends: {},
    backends: Object.fromEntries(backends.map((addr) => [addr, { http: { Protocol: 'TCP' as const, Port: PORT } }])),
    labels: {},
    selector: {},
    includeExternal: true,
    shared: true,
    clusterID: id,
  };
}

/** A waiter list: resolve the first waiter whose predicate matches. */
class Signals<T> {
  private waiters: { match: (v: T) => boolean; resolve: (at: number) => void }[] = [];
  emit(value: T): void {
    const at = performance.now();
    this.waiters = this.waiters.filter((w) => (w.match(value) ? (w.resolve(at), false) : true));
  }
  next(match: (v: T) => boolean): Promise<number> {
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }
}

async function propagation(workDir: string): Promise<{ agent: number[]; baseline: number[] }> {
  const kube = await startLocalKube();
  const west = await PeerCluster.start('west', 2);
  const pinDir = `/sys/fs/bpf/cm-bench-agent-${process.pid}`;
  const vip = localServiceIP(0);
  let agent: Agent | undefined;
  try {
    await kube.objects.create(globalService('echo', vip));
    await west.putNode('west-worker', '10.99.0.2', '10.100.0.0/15');
    await west.putService(clusterServiceOf('west', 2, 'echo', ['10.100.0.1']));
    const configDir = join(workDir, 'remotes');
    await west.writeConfigEntry(configDir);
    const kc = new KubeConfig();
    kc.loadFromString(kube.kubeconfig('east'));
    const metrics = createMetricsRegistry();
    const datapath = await Datapath.open({ pinDir });
    const written = new Signals<readonly DatapathService[]>();
    const observed = {
      reconcile: (desired: readonly DatapathService[]) => {
        const stats = datapath.reconcile(desired);
        written.emit(desired);
        return stats;
      },
      dump: () => datapath.dump(),
      programStats: () => datapath.programStats(),
      close: () => datapath.close(),
    };
    const local = new LocalInformers({ kubeConfig: kc, log: silent, metrics });
    agent = new Agent({
      cluster: { name: 'east', id: 1 },
      nodeName: 'bench',
      local,
      remotes: createRemoteClusters({ config: { clustermeshConfig: configDir, namespace: 'kube-system' }, kubeConfig: kc, cluster: { name: 'east', id: 1 }, localAddresses: () => local.localAddresses(), log: silent, metrics }),
      health: NO_HEALTH_CHECKS,
      datapath: observed,
      peerCacheTtlMs: 300_000,
      metrics,
      log: silent,
    });
    await agent.start();
    const hasBackend = (addr: string) => (desired: readonly DatapathService[]) =>
      desired.some((s) => s.vip === vip && s.backends.some((b) => b.addr === addr));
    await waitFor(() => agent!.controller.ready(), 20_000, 'the agent to be ready');
    await waitFor(async () => (await agent!.controller.idle(), hasBackend('10.100.0.1')(datapath.dump())), 20_000, 'the first backend');

    const seen = new Signals<string>();
    const watcher = await west.client().watch().key(serviceKey('west', 'default', 'echo')).create();
    watcher.on('put', (kv) => seen.emit(kv.value.toString()));
    const agentMs: number[] = [];
    const baselineMs: number[] = [];
    for (let i = 1; i <= CHANGES; i++) {
      const addr = `10.101.${i >> 8}.${i & 255}`;
      const value = encodeClusterService(clusterServiceOf('west', 2, 'echo', [addr]));
      const watched = seen.next((v) => v === value);
      const mapped = written.next(hasBackend(addr));
      const t0 = performance.now();
      await west.client().put(serviceKey('west', 'default', 'echo')).value(value);
      const [tWatch, tMap] = await Promise.all([watched, mapped]);
      baselineMs.push(tWatch - t0);
      agentMs.push(tMap - t0);
    }
    await watcher.cancel();
    return { agent: agentMs, baseline: baselineMs };
  } finally {
    await agent?.stop();
    Datapath.destroy(pinDir);
    await west.stop();
    await kube.close();
  }
}

function rssMiB(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { rss: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 };
}

async function fullSync(workDir: string): Promise<{ seconds: number; rss: number; peak: number; services: number; backends: number }> {
  const kube = await startLocalKube();
  const peers: PeerCluster[] = [];
  const cgroup = createTestCgroup('cm-bench-agent');
  const pinDir = `/sys/fs/bpf/cm-bench-agent-full-${process.pid}`;
  const configDir = join(workDir, 'remotes-full');
  let agent: AgentProcess | undefined;
  try {
    await createGlobalServices(kube, SERVICES);
    for (let p = 0; p < PEERS; p++) {
      const name = `peer-${p}`;
      const peer = await PeerCluster.start(name, p + 2);
      peers.push(peer);
      const puts: Promise<unknown>[] = [peer.putNode('worker', `10.99.1.${p}`, `10.${110 + p}.0.0/16`)];
      for (let s = 0; s < SERVICES; s++) {
        const backends = Array.from({ length: BACKENDS }, (_, b) => {
          const i = s * BACKENDS + b;
          return `10.${110 + p}.${i >> 8}.${i & 255}`;
        });
        puts.push(peer.putService(clusterServiceOf(name, p + 2, `svc-${s}`, backends)));
        if (puts.length === 200) await Promise.all(puts.splice(0));
      }
      await Promise.all(puts);
      await peer.writeConfigEntry(configDir);
    }
    writeFileSync(join(workDir, 'kubeconfig'), kube.kubeconfig('east'));
    const t0 = performance.now();
    agent = await AgentProcess.start([
      '--cluster-name', 'east', '--cluster-id', '1', '--node-name', 'bench',
      '--kubeconfig', join(workDir, 'kubeconfig'), '--clustermesh-config', configDir,
      '--bpf-pin-dir', pinDir, '--cgroup', cgroup.dir, '--no-routes', '--no-health-checks',
    ]);
    const wanted = { services: SERVICES, backends: SERVICES * BACKENDS * PEERS };
    const entries = async () => {
      const { body } = await agent!.get('/metrics', agent!.healthUrl).catch(() => ({ body: '' }));
      const read = (kind: string) => Number(new RegExp(`clustermesh_agent_datapath_entries\\{kind="${kind}"[^}]*\\} (\\d+)`).exec(body)?.[1] ?? 0);
      return { services: read('service'), backends: read('backend') };
    };
    await waitFor(async () => {
      const e = await entries();
      return e.services === wanted.services && e.backends === wanted.backends;
    }, 600_000, 'the full sync');
    const seconds = (performance.now() - t0) / 1000;
    return { seconds, ...rssMiB(agent.pid!), ...wanted };
  } finally {
    await agent?.kill('SIGTERM');
    Datapath.destroy(pinDir, cgroup.dir);
    await cgroup.remove();
    for (const peer of peers) await peer.stop();
    await kube.close();
  }
}

type FullSync = Awaited<ReturnType<typeof fullSync>>;

function results(agent: Distribution, baseline: Distribution, sync: FullSync): BenchResult {
  const f = (n: number) => n.toFixed(2);
  return {
    name: 'agent',
    tables: [
      {
        title: 'Agent propagation: ClusterService put in the peer etcd → map written',
        notes: [`${agent.n} sequential changes, ms; baseline: a raw etcd watch in the same process seeing the same put`],
        columns: ['path', 'p50', 'p99', 'max'],
        rows: [
          ['raw etcd watch (baseline)', f(baseline.p50), f(baseline.p99), f(baseline.max)],
          ['agent: watch → validate → merge → map write', f(agent.p50), f(agent.p99), f(agent.max)],
        ],
      },
      {
        title: `Agent full sync: joining ${PEERS} peers × ${SERVICES} global services × ${BACKENDS} backends`,
        notes: ['the built daemon as a process, from spawn until its metrics count every frontend and backend in the maps'],
        columns: ['frontends', 'backends', 'time to synced maps (s)', 'agent RSS (MiB)', 'agent peak RSS (MiB)'],
        rows: [[sync.services, sync.backends, sync.seconds.toFixed(2), sync.rss.toFixed(0), sync.peak.toFixed(0)]],
      },
    ],
    figures: [
      figure('agent.propagation.p50', 'peer etcd put → agent map write, p50', agent.p50, 'ms', { what: 'raw etcd watch, p50', value: baseline.p50 }),
      figure('agent.propagation.p99', 'peer etcd put → agent map write, p99', agent.p99, 'ms', { what: 'raw etcd watch, p99', value: baseline.p99 }),
      figure('agent.fullsync.seconds', `full sync of ${sync.backends} backends from ${PEERS} peers`, sync.seconds, 's'),
      figure('agent.fullsync.peak-rss', 'agent peak RSS after that sync', sync.peak, 'MiB'),
    ],
  };
}

/** Runs the agent benchmarks (root, bpffs mounted): propagation, then the full sync. */
export async function runAgentBench(): Promise<BenchResult> {
  const workDir = mkdtempSync(join(tmpdir(), 'cm-bench-agent-'));
  try {
    const p = await propagation(workDir);
    const sync = await fullSync(workDir);
    return results(distribution(p.agent), distribution(p.baseline), sync);
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

runStandalone(import.meta.url, runAgentBench);
