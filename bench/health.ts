/**
 * Health probing at mesh scale: with 128,000 remote backends, how often is a backend of a service
 * in use probed? The interval bounds an abrupt failover (a killed backend is quarantined at its
 * next probe; a silent one after that probe and one more time out, agent/health/checker.ts).
 *
 * Two meshes of 128,000 remote backends (16 peers), every Service global with affinity local and
 * healthy local backends. Each runs the real HealthChecker (default options: 300 ms interval,
 * 2,000 probe starts/s) with real TCP connects to loopback addresses nobody listens on, twice:
 *  - before (the baseline, same run): every candidate backend probed alike, what the merge asked
 *    for until now;
 *  - after: the merge's probe plan (the backends in use, a few next in line as standby).
 * Per-target intervals: targets ÷ probe starts per second of their tier over the window, and the
 * observed gaps between two probes of one target (p50/p99) where the window saw them.
 * Run: npx tsc -p tsconfig.json && node dist/bench/health.js (BENCH_HEALTH_SECONDS=10 per run).
 */
import { DEFAULT_HEALTH_OPTIONS, HealthChecker, type HealthCheckerOptions, type HealthTarget, type ProbeTarget } from '../agent/health/index.js';
import { probeTcp } from '../agent/health/probe.js';
import { mergeServices, type LocalService, type RemoteCluster } from '../agent/merge/index.js';
import { parseServicePolicy } from '../lib/k8s/annotations.js';
import type { ClusterService } from '../lib/kvstore/types.js';
import { freePort } from '../test/harness/etcd.js';
import { type BenchResult, type Cell, distribution, envInt, figure, runStandalone } from './report.js';

const SECONDS = envInt('BENCH_HEALTH_SECONDS', 10);
const WARMUP_MS = 1000;
const PEERS = 16;
/** the failover budget the intervals are judged against */
const FAILOVER_BUDGET_MS = 2000;
/** a cap that keeps 2,000 targets in use at the full pace (2,000 ÷ 300 ms = 6,667 starts/s) */
const RAISED_PROBE_RATE = 8000;

interface Mesh {
  name: string;
  services: number;
  backendsPerPeer: number;
  localBackends: number;
}

const MESHES: Mesh[] = [
  { name: 'A', services: 250, backendsPerPeer: 32, localBackends: 2 },
  { name: 'B', services: 2000, backendsPerPeer: 4, localBackends: 1 },
];

/** Distinct loopback addresses: 127.<1 + n / 65536>.<n / 256>.<n % 256>. */
const loopback = (n: number) => `127.${1 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;

function buildMesh(mesh: Mesh, port: number) {
  let next = 0;
  const localServices: LocalService[] = [];
  const remote = new Map<string, RemoteCluster>();
  for (let p = 0; p < PEERS; p++) remote.set(`peer-${String(p).padStart(2, '0')}`, { id: p + 2, services: [] });
  for (let s = 0; s < mesh.services; s++) {
    const name = `svc-${s}`;
    localServices.push({
      namespace: 'default',
      name,
      clusterIPs: [`10.111.${s >> 8}.${s & 255}`],
      ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
      policy: parseServicePolicy({ 'clustermesh.io/global': 'true', 'clustermesh.io/affinity': 'local' }),
      localBackends: Array.from({ length: mesh.localBackends }, () => ({
        addr: loopback(next++),
        ports: { http: port },
        ready: true,
        serving: true,
        terminating: false,
      })),
    });
    for (const [cluster, peer] of remote) {
      const service: ClusterService = {
        cluster,
        namespace: 'default',
        name,
        frontends: {},
        backends: Object.fromEntries(
          Array.from({ length: mesh.backendsPerPeer }, () => [loopback(next++), { http: { Protocol: 'TCP' as const, Port: port } }]),
        ),
        labels: {},
        selector: {},
        includeExternal: true,
        shared: true,
        clusterID: peer.id,
      };
      peer.services.push(service);
    }
  }
  const merged = mergeServices({
    localCluster: { name: 'bench', id: 1 },
    localServices,
    remote,
    health: () => 'unknown',
    explain: false,
  });
  const everyCandidate: ProbeTarget[] = [
    ...localServices.flatMap((svc) => svc.localBackends.map((b) => ({ clusterId: 0, addr: b.addr, port }))),
    ...[...remote.values()].flatMap((peer) =>
      peer.services.flatMap((svc) => Object.keys(svc.backends).map((addr) => ({ clusterId: peer.id, addr, port }))),
    ),
  ];
  return { after: merged.probeTargets, before: everyCandidate, remoteBackends: PEERS * mesh.services * mesh.backendsPerPeer };
}

interface TierStats {
  targets: number;
  starts: number;
  /** targets ÷ starts per second */
  meanIntervalMs: number;
  gaps: number[];
}

interface Run {
  inUse: TierStats;
  standby: TierStats;
  startsPerSecond: number;
  /** this process's CPU time (user + system) over the window, as a share of one core */
  cpuShare: number;
}

/** The checker on `plan` for the window; every probe start is timed per target. */
async function runChecker(plan: ProbeTarget[], options: Partial<HealthCheckerOptions> = {}): Promise<Run> {
  const standbyKeys = new Set(plan.filter((t) => t.standby).map((t) => t.addr));
  const lastStart = new Map<string, number>();
  const tiers = { inUse: { starts: 0, gaps: [] as number[] }, standby: { starts: 0, gaps: [] as number[] } };
  let measuring = false;
  const checker = new HealthChecker(options, (target: HealthTarget, timeoutMs, signal) => {
    const now = performance.now();
    if (measuring) {
      const tier = standbyKeys.has(target.addr) ? tiers.standby : tiers.inUse;
      tier.starts++;
      const last = lastStart.get(target.addr);
      if (last !== undefined) tier.gaps.push(now - last);
      lastStart.set(target.addr, now);
    }
    return probeTcp(target, timeoutMs, signal);
  });
  try {
    checker.setTargets(plan);
    await new Promise((resolve) => setTimeout(resolve, WARMUP_MS));
    measuring = true;
    const start = performance.now();
    const cpuAtStart = process.cpuUsage();
    await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
    measuring = false;
    const cpu = process.cpuUsage(cpuAtStart);
    const seconds = (performance.now() - start) / 1000;
    const stats = (tier: typeof tiers.inUse, targets: number): TierStats => ({
      targets,
      starts: tier.starts,
      meanIntervalMs: tier.starts === 0 ? Infinity : (targets / (tier.starts / seconds)) * 1000,
      gaps: tier.gaps,
    });
    return {
      inUse: stats(tiers.inUse, plan.length - standbyKeys.size),
      standby: stats(tiers.standby, standbyKeys.size),
      startsPerSecond: (tiers.inUse.starts + tiers.standby.starts) / seconds,
      cpuShare: (cpu.user + cpu.system) / 1e6 / seconds,
    };
  } finally {
    checker.close();
  }
}

const ms = (v: number) => (Number.isFinite(v) ? (v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${v.toFixed(0)} ms`) : 'never (starved)');

function gapCell(tier: TierStats): string {
  // A target probed once in the window says nothing about its gap; a handful of gaps is no percentile.
  if (tier.gaps.length < tier.targets / 2) return `- (most targets probed < 2× in ${SECONDS} s)`;
  const d = distribution(tier.gaps);
  return `${ms(d.p50)} / ${ms(d.p99)}`;
}

/** Worst case from a backend's death to its quarantine: it dies just after a probe; silent, the next probe and one more time out. */
const silentDeathMs = (intervalMs: number) => intervalMs + 2 * DEFAULT_HEALTH_OPTIONS.timeoutMs;

export async function runHealthBench(): Promise<BenchResult> {
  const port = await freePort(); // nothing listens: every probe is a real connect, refused
  const rows: Cell[][] = [];
  const figures = [];
  for (const mesh of MESHES) {
    const { before, after, remoteBackends } = buildMesh(mesh, port);
    const baseline = await runChecker(before);
    const planned = await runChecker(after);
    const raised = await runChecker(after, { maxProbesPerSecond: RAISED_PROBE_RATE });
    const shape = `${mesh.name}: ${PEERS} peers × ${mesh.services} services × ${mesh.backendsPerPeer} = ${remoteBackends} remote; ${mesh.localBackends} local per service`;
    const intervalIn = (run: Run) => {
      const d = run.inUse.gaps.length >= run.inUse.targets / 2 ? distribution(run.inUse.gaps).p99 : run.inUse.meanIntervalMs;
      return Math.max(d, run.inUse.meanIntervalMs);
    };
    const runs = [
      ['before: every candidate alike', baseline],
      ['after: in use + next in line', planned],
      [`after, --health-max-probe-rate ${RAISED_PROBE_RATE}`, raised],
    ] as const;
    for (const [label, run] of runs) {
      const worst = intervalIn(run);
      rows.push([
        shape,
        label,
        run.inUse.targets,
        run.standby.targets,
        before.length - run.inUse.targets - run.standby.targets,
        run.startsPerSecond.toFixed(0),
        ms(run.inUse.meanIntervalMs),
        gapCell(run.inUse),
        run.standby.targets === 0 ? '-' : ms(run.standby.meanIntervalMs),
        `${ms(silentDeathMs(worst))} ${silentDeathMs(worst) < FAILOVER_BUDGET_MS ? '< 2 s' : '≥ 2 s'}`,
        `${(run.cpuShare * 100).toFixed(0)} %`,
      ]);
    }
    figures.push(
      figure(`health.interval.${mesh.name}`, `probe interval of a backend in use, mesh ${mesh.name} (${remoteBackends} remote backends)`, planned.inUse.meanIntervalMs, 'ms', {
        what: 'every candidate probed alike (the previous plan)',
        value: baseline.inUse.meanIntervalMs,
      }),
    );
  }
  return {
    name: 'health',
    tables: [
      {
        title: 'Health probing with 128,000 remote backends: probe interval of a backend in use',
        notes: [
          `real HealthChecker, default options (interval ${DEFAULT_HEALTH_OPTIONS.intervalMs} ms, timeout ${DEFAULT_HEALTH_OPTIONS.timeoutMs} ms, ${DEFAULT_HEALTH_OPTIONS.maxProbesPerSecond} probe starts/s, ${DEFAULT_HEALTH_OPTIONS.maxConcurrentProbes} concurrent); real TCP connects to loopback addresses (refused);`,
          `every Service global with affinity local and healthy local backends; ${SECONDS} s window after ${WARMUP_MS} ms; interval = targets ÷ probe starts/s of their tier; gaps = between two probes of one target;`,
          'worst silent death → quarantine = p99 gap (or the mean interval if larger) + 2 × timeout; a refused connect (killed process) quarantines at the next probe;',
          `CPU = this process's user + system time over the window (the checker and the connects' syscalls); the last row of each mesh raises the probe rate cap (agent flag --health-max-probe-rate) to ${RAISED_PROBE_RATE}/s`,
        ],
        columns: ['mesh', 'plan', 'in use', 'standby', 'not probed', 'probes/s', 'interval in use', 'gap in use p50 / p99', 'interval standby', 'silent death → quarantine', 'CPU (one core)'],
        rows,
      },
    ],
    figures,
  };
}

runStandalone(import.meta.url, runHealthBench);
