/**
 * Socket-LB benchmark (issue 2 "Measure"): connect()+close latency and rate to a VIP through the
 * cgroup hook, directly to the backend, and through iptables DNAT (kube-proxy style: one rule per
 * service in one chain, loaded with iptables-restore in its own namespace), at 1 / 1k / 10k / 30k
 * services side by side; then the time to program 30k services x 4 backends from empty, to
 * reconcile the same state again and to apply a 1% change, batched vs one syscall per entry, each
 * with the time spent inside the map-write syscalls alone (the floor the kernel sets); then what
 * the kernel charges per element of each map kind and flag (bench/map-costs.ts).
 * Run: npx tsc -p tsconfig.json && node dist/bench/datapath.js   (root; bpffs mounted)
 * Smaller runs: BENCH_DATAPATH_SIZES=1,1000 BENCH_DATAPATH_CONNECTS=500 (the largest size is the one
 * programmed).
 */
import { execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { constants } from '../lib/datapath/codecs.js';
import { Datapath, type DatapathService, type ReconcileStats } from '../lib/datapath/index.js';
import { loadNative, type NativeAddon } from '../native/index.js';
import { createTestCgroup, type TestCgroup } from '../test/harness/cgroup.js';
import { TestNetns } from '../test/harness/netns.js';
import { runMapCostsBench } from './map-costs.js';
import { type BenchResult, type Figure, type Table, envInt, envInts, figure, percentile, runStandalone } from './report.js';

const SIZES = envInts('BENCH_DATAPATH_SIZES', [1, 1_000, 10_000, 30_000]);
const CONNECTS = envInt('BENCH_DATAPATH_CONNECTS', 2_000);
const WARMUP = 200;
const BACKENDS_PER_SERVICE = 4;
const VIP_PORT = 80;
const BACKEND_ADDR = '10.200.1.1';
const VIP_ROUTE = '10.200.128.0/17'; // routed (to lo) in the iptables namespace only

/** Service i's VIP: 10.200.128.0/17 holds 32k of them. */
const vipOf = (i: number) => `10.200.${128 + (i >> 8)}.${i & 255}`;
/** Fake backend j of service i (never connected to): 10.202.0.0/15 holds 128k. */
const fakeBackendOf = (i: number, j: number) => {
  const n = i * BACKENDS_PER_SERVICE + j;
  return `10.${202 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
};

/** The service measured sits in the middle of the list (iptables scans its chain in order). */
const measuredIndex = (size: number) => Math.floor(size / 2);

function services(size: number, serverPort: number, generation = 0): DatapathService[] {
  return Array.from({ length: size }, (_, i) => ({
    vip: vipOf(i),
    port: VIP_PORT,
    proto: 'TCP' as const,
    backends:
      i === measuredIndex(size) && serverPort > 0
        ? [{ addr: BACKEND_ADDR, port: serverPort, state: 'active' as const, clusterId: 0 }]
        : Array.from({ length: BACKENDS_PER_SERVICE }, (_, j) => ({
            addr: fakeBackendOf(i, j),
            port: j === 0 ? 8080 + generation : 8080,
            state: 'active' as const,
            clusterId: 0,
          })),
  }));
}

function iptablesRules(size: number, serverPort: number): string {
  const lines = ['*nat', ':OUTPUT ACCEPT [0:0]', ':CM-SERVICES - [0:0]', '-A OUTPUT -j CM-SERVICES'];
  for (let i = 0; i < size; i++) {
    const target = i === measuredIndex(size) ? `${BACKEND_ADDR}:${serverPort}` : `${fakeBackendOf(i, 0)}:8080`;
    lines.push(`-A CM-SERVICES -d ${vipOf(i)}/32 -p tcp -m tcp --dport ${VIP_PORT} -j DNAT --to-destination ${target}`);
  }
  return `${lines.join('\n')}\nCOMMIT\n`;
}

// Runs in the namespace: answers nothing, just accepts.
const SERVER = `
const s = require('net').createServer((c) => c.on('error', () => {}).resume());
s.listen(0, ${JSON.stringify(BACKEND_ADDR)}, () => console.log(s.address().port));`;

// Runs in the namespace: sequential connect()+close, latency per connect in microseconds.
const CLIENT = `
const net = require('net');
const [host, port, count, warmup] = process.argv.slice(1);
function once() {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const s = net.connect({ host, port: Number(port) });
    s.on('connect', () => { s.destroy(); resolve(Number(process.hrtime.bigint() - t0) / 1000); });
    s.on('error', reject);
  });
}
(async () => {
  for (let i = 0; i < Number(warmup); i++) await once();
  const lat = [];
  const start = process.hrtime.bigint();
  for (let i = 0; i < Number(count); i++) lat.push(await once());
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(JSON.stringify({ lat, seconds }));
})().catch((e) => { console.error(e.message); process.exit(1); });`;

interface Measurement {
  p50: number;
  p99: number;
  perSecond: number;
}

async function runClient(ns: TestNetns, host: string, port: number, cgroupDir?: string): Promise<Measurement> {
  const child = ns.spawn(process.execPath, ['-e', CLIENT, host, String(port), String(CONNECTS), String(WARMUP)], { cgroupDir });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`benchmark client to ${host} failed (exit ${code})`);
  const { lat, seconds } = JSON.parse(out) as { lat: number[]; seconds: number };
  return { p50: percentile(lat, 50), p99: percentile(lat, 99), perSecond: CONNECTS / seconds };
}

async function startServer(ns: TestNetns): Promise<number> {
  const child = ns.spawn(process.execPath, ['-e', SERVER]);
  const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
  return Number(line);
}

function prepareNetns(ns: TestNetns): void {
  ns.addAddress(`${BACKEND_ADDR}/32`);
  // many short connections from one client: reuse TIME_WAIT ports instead of running out
  ns.exec('sysctl', '-qw', 'net.ipv4.tcp_tw_reuse=1', 'net.ipv4.ip_local_port_range=10000 65000');
}

interface World {
  hookNs: TestNetns;
  iptNs: TestNetns;
  cgroup: TestCgroup;
  pinDir: string;
  dp?: Datapath;
}

interface LatencyRow {
  size: number;
  direct: Measurement;
  hook: Measurement;
  ipt: Measurement;
}

async function measureLatencies(world: World): Promise<LatencyRow[]> {
  const hookPort = await startServer(world.hookNs);
  const iptPort = await startServer(world.iptNs);
  world.dp = await Datapath.open({ pinDir: world.pinDir });
  world.dp.attach(world.cgroup.dir);
  const rows: LatencyRow[] = [];
  for (const size of SIZES) {
    const vip = vipOf(measuredIndex(size));
    world.dp.reconcile(services(size, hookPort));
    execFileSync('nsenter', [`--net=${world.iptNs.path}`, 'iptables-restore'], { input: iptablesRules(size, iptPort) });
    const direct = await runClient(world.hookNs, BACKEND_ADDR, hookPort, world.cgroup.dir);
    const hook = await runClient(world.hookNs, vip, VIP_PORT, world.cgroup.dir);
    const ipt = await runClient(world.iptNs, vip, VIP_PORT);
    rows.push({ size, direct, hook, ipt });
    process.stderr.write(`bench: ${size} services measured\n`);
  }
  world.dp.close();
  world.dp = undefined;
  return rows;
}

function latencyTable(rows: LatencyRow[], iptablesVersion: string): Table {
  const f = (m: Measurement) => `${m.p50.toFixed(0)} / ${m.p99.toFixed(0)} / ${m.perSecond.toFixed(0)}`;
  return {
    title: 'connect() to a VIP: socket-LB hook vs direct vs iptables DNAT',
    notes: [
      `connect()+close, ${CONNECTS} sequential connects per cell (after ${WARMUP} warm-up) from one Node client;`,
      `latency in µs (p50 / p99 / connects per s); measured VIP = the middle service of the list; iptables: ${iptablesVersion}`,
    ],
    columns: ['services', 'direct to backend', 'socket-LB hook', 'iptables DNAT', 'hook/direct p50', 'hook/iptables p50', 'hook/iptables p99'],
    rows: rows.map(({ size, direct, hook, ipt }) => [
      size,
      f(direct),
      f(hook),
      f(ipt),
      (hook.p50 / direct.p50).toFixed(2),
      (hook.p50 / ipt.p50).toFixed(2),
      (hook.p99 / ipt.p99).toFixed(2),
    ]),
  };
}

const servicesText = (n: number) => `${n} service${n === 1 ? '' : 's'}`;

function latencyFigures(rows: LatencyRow[]): Figure[] {
  const first = rows[0];
  const last = rows[rows.length - 1];
  return [
    ...rows.map(({ size, hook, ipt }) =>
      figure(`datapath.connect.${size}`, `connect() p50 through the hook, ${servicesText(size)}`, hook.p50, 'µs', { what: 'iptables DNAT p50, same size', value: ipt.p50 }),
    ),
    {
      ...figure('datapath.connect.hook-growth', `hook connect() p50 at ${servicesText(last.size)}`, last.hook.p50, 'µs', { what: `the hook at ${servicesText(first.size)}`, value: first.hook.p50 }),
      size: last.size,
    },
    figure('datapath.connect.iptables-growth', `iptables connect() p50 at ${servicesText(last.size)}`, last.ipt.p50, 'µs', { what: `iptables at ${servicesText(first.size)}`, value: first.ipt.p50 }),
  ];
}

const WRITE_CALLS = ['mapUpdateBatch', 'mapDeleteBatch', 'mapUpdate', 'mapDelete'] as const;

/** Wraps the addon's map-write calls to add up the time spent in them (the syscalls) until `restore`. */
function timeMapWrites(native: NativeAddon): { takeMs(): number; restore(): void } {
  let spentMs = 0;
  const originals = WRITE_CALLS.map((name) => [name, native[name]] as const);
  for (const [name, original] of originals) {
    const call = original as (...args: unknown[]) => unknown;
    (native as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
      const started = performance.now();
      try {
        return call(...args);
      } finally {
        spentMs += performance.now() - started;
      }
    };
  }
  return {
    takeMs() {
      const ms = spentMs;
      spentMs = 0;
      return ms;
    },
    restore() {
      for (const [name, original] of originals) (native as unknown as Record<string, unknown>)[name] = original;
    },
  };
}

const REPEATS = 6;
const FULL_REPEATS = 3;

interface Measured {
  stats: ReconcileStats;
  syscallMs: number;
}

type MapWrites = ReturnType<typeof timeMapWrites>;

function measure(dp: Datapath, mapWrites: MapWrites, desired: DatapathService[]): Measured {
  mapWrites.takeMs();
  const stats = dp.reconcile(desired);
  return { stats, syscallMs: mapWrites.takeMs() };
}

/** The median run by total time (an agent reconciles again and again: JIT-warm, GC-steady). */
function median(runs: Measured[]): Measured {
  return [...runs].sort((x, y) => x.stats.durationMs - y.stats.durationMs)[Math.floor(runs.length / 2)];
}

interface ProgrammingRow {
  batch: boolean;
  full: Measured;
  same: Measured;
  delta: Measured;
  firstDeltaMs: number;
}

/** Full syncs into fresh (empty) maps; each one pays for creating its maps before it is timed. */
async function measureFullSyncs(pinDir: string, mapWrites: MapWrites, batch: boolean): Promise<Measured> {
  const size = SIZES[SIZES.length - 1];
  const runs: Measured[] = [];
  for (let i = 0; i < FULL_REPEATS; i++) {
    const dp = await Datapath.open({ pinDir, batch });
    try {
      runs.push(measure(dp, mapWrites, services(size, 0)));
    } finally {
      dp.close();
      Datapath.destroy(pinDir);
    }
  }
  return median(runs);
}

async function measureProgramming(pinDir: string, mapWrites: MapWrites, batch: boolean): Promise<ProgrammingRow> {
  const full = await measureFullSyncs(pinDir, mapWrites, batch);
  const dp = await Datapath.open({ pinDir, batch });
  try {
    const size = SIZES[SIZES.length - 1];
    // inputs are built before each call: reconcile's own time is what is measured
    const base = services(size, 0);
    measure(dp, mapWrites, base);
    // 1%: every 100th service has one backend replaced (another port); reverting is a 1% change too
    const replaced = services(size, 0, 1);
    const changed = services(size, 0).map((s, i) => (i % 100 === 0 ? replaced[i] : s));
    const same: Measured[] = [];
    const delta: Measured[] = [];
    for (let i = 0; i < REPEATS; i++) {
      same.push(measure(dp, mapWrites, i % 2 === 0 ? services(size, 0) : base));
      delta.push(measure(dp, mapWrites, changed), measure(dp, mapWrites, base));
    }
    return { batch, full, same: median(same), delta: median(delta), firstDeltaMs: delta[0].stats.durationMs };
  } finally {
    dp.close();
    Datapath.destroy(pinDir);
  }
}

function programmingTable(rows: ProgrammingRow[]): Table {
  const size = SIZES[SIZES.length - 1];
  const cell = ({ stats, syscallMs }: Measured) => `${stats.durationMs.toFixed(1)} ms / ${syscallMs.toFixed(1)} ms (${stats.updates} upd, ${stats.deletes} del)`;
  return {
    title: `Programming ${size} services × ${BACKENDS_PER_SERVICE} backends: batched vs one syscall per entry`,
    notes: [
      `layout: cm_lb*_svc preallocated hash (slot 0 holds ${constants.CM_LB_INLINE_BACKENDS} backend IDs inline), cm_lb*_be and cm_lb*_rnat BPF_F_MMAPABLE arrays indexed by ID (the map-cost tables below compare the layouts);`,
      'Datapath.reconcile, diff included: total / inside the map-write syscalls alone; batched: the hashes in batch syscalls, the arrays by stores into their mapped memory; single: a syscall per entry, arrays too;',
      `"from empty", "same state" and "1% change" are medians of ${FULL_REPEATS}, ${REPEATS} and ${2 * REPEATS} runs`,
    ],
    columns: ['writes', 'from empty', 'same state again', `1% change (1 backend replaced in ${Math.ceil(size / 100)} services)`, 'first 1% change'],
    rows: rows.map((r) => [r.batch ? 'batched' : 'single', cell(r.full), cell(r.same), cell(r.delta), `${r.firstDeltaMs.toFixed(1)} ms`]),
  };
}

function programmingFigures(batched: ProgrammingRow, single: ProgrammingRow): Figure[] {
  const size = SIZES[SIZES.length - 1];
  const vs = (what: string, value: number) => ({ what: `one syscall per entry, ${what}`, value });
  return [
    { ...figure('datapath.program.full', `full sync of ${size} × ${BACKENDS_PER_SERVICE} into empty maps, batched`, batched.full.stats.durationMs, 'ms', vs('same', single.full.stats.durationMs)), size },
    figure('datapath.program.same', `reconcile of the same ${size} services again, batched (median)`, batched.same.stats.durationMs, 'ms', vs('same', single.same.stats.durationMs)),
    figure('datapath.program.delta', `1% change of ${size} services, batched (median)`, batched.delta.stats.durationMs, 'ms', vs('same', single.delta.stats.durationMs)),
  ];
}

/** Runs the datapath benchmark (root, bpffs mounted): connect latency, then programming. */
export async function runDatapathBench(): Promise<BenchResult> {
  if (process.getuid?.() !== 0) throw new Error('the datapath benchmark needs root (BPF, namespaces, iptables): run it as root');
  const world: World = {
    hookNs: TestNetns.create('cm-bench-hook'),
    iptNs: TestNetns.create('cm-bench-ipt'),
    cgroup: createTestCgroup('cm-bench'),
    pinDir: `/sys/fs/bpf/cm-bench-${process.pid}`,
  };
  const mapWrites = timeMapWrites(loadNative());
  try {
    prepareNetns(world.hookNs);
    prepareNetns(world.iptNs);
    // DNAT in nat/OUTPUT runs after the first route lookup, so the VIPs need a route there
    world.iptNs.ip('route', 'add', VIP_ROUTE, 'dev', 'lo');

    const latency = await measureLatencies(world);
    const batched = await measureProgramming(`${world.pinDir}-batch`, mapWrites, true);
    const single = await measureProgramming(`${world.pinDir}-single`, mapWrites, false);
    const ipt = execFileSync('iptables', ['--version'], { encoding: 'utf8' }).trim();
    // what the kernel charges per element of each map kind: why bpf/sock_lb.c has the layout it has
    const maps = await runMapCostsBench();
    return {
      name: 'datapath',
      tables: [latencyTable(latency, ipt), programmingTable([batched, single]), ...maps.tables],
      figures: [...latencyFigures(latency), ...programmingFigures(batched, single), ...maps.figures],
    };
  } finally {
    mapWrites.restore();
    world.dp?.close();
    Datapath.destroy(world.pinDir, world.cgroup.dir);
    await world.hookNs.destroy();
    await world.iptNs.destroy();
    await world.cgroup.remove();
  }
}

runStandalone(import.meta.url, runDatapathBench);
