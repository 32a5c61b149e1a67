/**
 * `npm run bench`: every benchmark in sequence (datapath, apiserver, agent, ownership, health, failover, mesh), then
 * bench/RESULTS.md: the machine and date, a summary against DESIGN §8's numbers to beat, every
 * figure beside the baseline it ran with and the ratio, and each bench's tables. A bench that
 * fails is reported as not run (the others still run) and the exit code is 1.
 *
 * Every run is also kept in bench/results.json, so a subset (BENCH_ONLY=datapath,agent) replaces
 * only its own benches there and RESULTS.md is written again from all of them, each section with
 * its own date, sizes and load. BENCH_RESULTS=path writes the Markdown elsewhere (the JSON beside
 * it); the sizes of each bench are listed in RESULTS.md ("Reproduce").
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runAgentBench } from './agent.js';
import { runApiserverBench } from './apiserver.js';
import { runDatapathBench } from './datapath.js';
import { runFailoverBench } from './failover.js';
import { runHealthBench } from './health.js';
import { runMeshBench } from './mesh.js';
import { runOwnershipBench } from './ownership.js';
import { type BenchResult, type Figure, type MachineInfo, type Table, describeMachine, formatMarkdown, formatText, isEntryPoint, machineInfo } from './report.js';

const BENCHES: Record<string, () => Promise<BenchResult>> = {
  datapath: runDatapathBench,
  apiserver: runApiserverBench,
  agent: runAgentBench,
  ownership: runOwnershipBench,
  health: runHealthBench,
  failover: runFailoverBench,
  mesh: runMeshBench,
};

/** The env knobs that shrink a run; a run with none set used the sizes the issues ask for. */
export const SIZE_KNOBS: Record<string, string> = {
  BENCH_DATAPATH_SIZES: 'service counts measured side by side (default 1,1000,10000,30000; the largest is programmed)',
  BENCH_DATAPATH_CONNECTS: 'connects per cell (default 2000)',
  BENCH_APISERVER_SERVICES: 'global services, 10 endpoints each (default 10000)',
  BENCH_APISERVER_PODS: 'pods (default 5000)',
  BENCH_AGENT_CHANGES: 'propagation samples (default 1000)',
  BENCH_AGENT_PEERS: 'peers in the full sync (default 16)',
  BENCH_AGENT_SERVICES: 'global services per peer (default 2000, 4 backends each)',
  BENCH_OWNERSHIP_PEERS: 'peers in the ownership decision (default 16)',
  BENCH_OWNERSHIP_SERVICES: 'global services per peer (default 2000, 4 backends each)',
  BENCH_OWNERSHIP_IPCACHE: 'ipcache entries per peer (default 8000)',
  BENCH_OWNERSHIP_REPS: 'repetitions of each decision, median reported (default 7)',
  BENCH_HEALTH_SECONDS: 'probing window per plan and mesh (default 10)',
  BENCH_FAILOVER_REPS: 'repetitions of each failover scenario (default 20)',
  BENCH_FAILOVER_BASELINE_REPS: 'repetitions of graceful failover with health checks off (default 5)',
  BENCH_MESH_PEERS: 'mock peer clusters in the mesh full sync (default 254: every cluster ID with the local one)',
  BENCH_MESH_ENDPOINTS: 'remote endpoints across them (default 250000)',
  BENCH_MESH_ETCDS: 'etcd processes the mock clusters share (default 6)',
  BENCH_MESH_AGENTS: 'simulated agent counts of the fan-in table (default 1,10,50,100,200)',
  BENCH_MESH_REPS: 'agent full syncs per mode, alternating (default 3)',
};

export interface BenchRun {
  name: string;
  startedAt: Date;
  seconds: number;
  /** the 1-minute load average when the bench started and when it ended */
  load: [number, number];
  /** the size knobs set for this run (`NAME=value`), none for the issues' sizes */
  knobs: string[];
  result?: BenchResult;
  error?: string;
}

export type Verdict = 'met' | 'not met' | 'not measured';

export interface TargetRow {
  target: string;
  measured: string;
  beside: string;
  verdict: Verdict;
}

/** the service count DESIGN §8's datapath targets name */
const TARGET_SERVICES = 30_000;

const fmt = (n: number, digits = 1) => (Number.isInteger(n) ? String(n) : n.toFixed(digits));
const withUnit = (f: Figure) => `${fmt(f.value)} ${f.unit}`;

/** Service count of a `datapath.connect.<size>` figure id, or undefined. */
const connectSize = (id: string) => (/^datapath\.connect\.(\d+)$/.test(id) ? Number(id.split('.')[2]) : undefined);

function connectTargets(byId: Map<string, Figure>, all: Figure[]): TargetRow[] {
  const perSize = all.filter((f) => connectSize(f.id) !== undefined);
  const growth = byId.get('datapath.connect.hook-growth');
  const iptGrowth = byId.get('datapath.connect.iptables-growth');
  const flat: TargetRow = growth?.ratio === undefined || growth.size !== TARGET_SERVICES
    ? { target: 'connect() to a VIP: cost flat from 1 to 30,000 services', measured: growth ? `only up to ${growth.size} services` : 'datapath bench not run', beside: '-', verdict: 'not measured' }
    : {
        target: 'connect() to a VIP: cost flat from 1 to 30,000 services (flat = largest size within 20% of 1 service, p50)',
        measured: `${growth.what}: ${withUnit(growth)} = ${fmt(growth.ratio, 2)}× ${growth.baseline!.what}`,
        beside: iptGrowth?.ratio === undefined ? '-' : `iptables grows ${fmt(iptGrowth.ratio, 2)}× over the same range`,
        verdict: growth.ratio <= 1.2 ? 'met' : 'not met',
      };
  const below: TargetRow = perSize.length === 0
    ? { target: 'connect() below iptables DNAT at every size', measured: 'datapath bench not run', beside: '-', verdict: 'not measured' }
    : {
        target: 'connect() below iptables DNAT at every size measured side by side (p50)',
        measured: perSize.map((f) => `${connectSize(f.id)}: ${fmt(f.ratio!, 2)}×`).join(', '),
        beside: 'iptables DNAT (one rule per service, nat/OUTPUT) in the same run',
        verdict: perSize.every((f) => f.ratio! < 1) ? 'met' : 'not met',
      };
  return [flat, below];
}

function fullSyncTarget(byId: Map<string, Figure>): TargetRow {
  const f = byId.get('datapath.program.full');
  const same = byId.get('datapath.program.same');
  const delta = byId.get('datapath.program.delta');
  const target = 'full datapath sync of 30k services × 4 backends < 100 ms (judged on programming empty maps)';
  if (!f || f.size !== TARGET_SERVICES) return { target, measured: f ? `only ${f.what}` : 'datapath bench not run', beside: '-', verdict: 'not measured' };
  const resync = same && delta ? `; a full pass over the programmed state takes ${withUnit(same)} unchanged, ${withUnit(delta)} with 1% changed` : '';
  return {
    target,
    measured: `${f.what}: ${withUnit(f)}${resync}`,
    beside: f.baseline ? `${f.baseline.what}: ${fmt(f.baseline.value)} ms (${fmt(f.ratio!, 2)}×)` : '-',
    verdict: f.value < 100 ? 'met' : 'not met',
  };
}

function propagationTarget(byId: Map<string, Figure>): TargetRow {
  const apiserver = byId.get('apiserver.change.p99');
  const agent = byId.get('agent.propagation.p99');
  const target = "endpoint change in cluster B visible in cluster A's maps: p99 < 100 ms";
  if (!apiserver || !agent) return { target, measured: 'apiserver or agent bench not run', beside: '-', verdict: 'not measured' };
  const sum = apiserver.value + agent.value;
  return {
    target,
    measured: `two stages measured apart (loopback, not on the lab): EndpointSlice → etcd p99 ${fmt(apiserver.value)} ms + peer etcd → maps p99 ${fmt(agent.value)} ms = ${fmt(sum)} ms`,
    beside: agent.baseline ? `raw etcd watch p99 ${fmt(agent.baseline.value, 2)} ms` : '-',
    verdict: sum < 100 ? 'met' : 'not met',
  };
}

function failoverTargets(byId: Map<string, Figure>): TargetRow[] {
  const gracefulFailed = byId.get('failover.graceful.failed.max');
  const gracefulStuck = byId.get('failover.graceful.unrecovered')?.value ?? 0;
  const abruptMax = byId.get('failover.abrupt.time.max');
  const abruptMedian = byId.get('failover.abrupt.time.p50');
  const abruptFailed = byId.get('failover.abrupt.failed.max');
  const abruptStuck = byId.get('failover.abrupt.unrecovered');
  const graceful: TargetRow = !gracefulFailed
    ? { target: 'graceful failover: 0 failed requests', measured: 'failover bench not run', beside: '-', verdict: 'not measured' }
    : {
        target: 'graceful failover (endpoints removed first): 0 failed requests',
        measured: `${gracefulFailed.what}: ${withUnit(gracefulFailed)}${gracefulStuck > 0 ? `; ${gracefulStuck} runs never moved` : ''}`,
        beside: gracefulFailed.baseline ? `${gracefulFailed.baseline.what}: ${gracefulFailed.baseline.value}` : '-',
        verdict: gracefulFailed.value === 0 && gracefulStuck === 0 ? 'met' : 'not met',
      };
  const abruptTarget = 'abrupt failover (backends killed): < 2 s to full recovery, bounded failed requests';
  const abrupt: TargetRow = !abruptStuck
    ? { target: abruptTarget, measured: 'failover bench not run', beside: '-', verdict: 'not measured' }
    : !abruptMax
      ? { target: abruptTarget, measured: `${abruptStuck.what}: ${abruptStuck.value}, none recovered`, beside: '-', verdict: 'not met' }
      : {
          target: abruptTarget,
          measured: `worst ${fmt(abruptMax.value)} ms, median ${fmt(abruptMedian!.value)} ms; failed requests at worst ${abruptFailed!.value}; ${abruptStuck.value} runs not recovered`,
          beside: abruptMax.baseline ? abruptMax.baseline.what : '-',
          verdict: abruptMax.value < 2000 && abruptStuck.value === 0 ? 'met' : 'not met',
        };
  return [graceful, abrupt];
}

function meshTarget(byId: Map<string, Figure>): TargetRow {
  const seconds = byId.get('mesh.fullsync.cached.seconds');
  const peak = byId.get('mesh.fullsync.cached.peak-rss');
  const target = 'mesh of 255 clusters, 250k remote endpoints: an agent has synced maps < 30 s with a peak RSS < 1 GiB';
  if (!seconds || !peak) return { target, measured: 'mesh bench not run', beside: '-', verdict: 'not measured' };
  return {
    target,
    measured: `${seconds.what}: ${withUnit(seconds)}, peak RSS ${withUnit(peak)}`,
    beside: seconds.baseline && peak.baseline ? `${seconds.baseline.what}: ${fmt(seconds.baseline.value)} s, ${fmt(peak.baseline.value)} MiB` : '-',
    verdict: seconds.value < 30 && peak.value < 1024 ? 'met' : 'not met',
  };
}

/** Each of DESIGN §8's numbers to beat, judged from the figures. Pure. */
export function designTargets(figures: Figure[]): TargetRow[] {
  const byId = new Map(figures.map((f) => [f.id, f]));
  return [
    ...connectTargets(byId, figures),
    fullSyncTarget(byId),
    propagationTarget(byId),
    ...failoverTargets(byId),
    meshTarget(byId),
    {
      target: 'agent restart, remote etcd outage, apiserver restart under load: 0 failed requests',
      measured: 'not a benchmark: asserted by e2e scenarios 4 and 5 (npm test)',
      beside: '-',
      verdict: 'not measured',
    },
  ];
}

export function summaryTable(rows: TargetRow[]): Table {
  return {
    title: 'Summary against DESIGN §8 (numbers to beat)',
    notes: [],
    columns: ['target', 'measured', 'baseline beside it', 'verdict'],
    rows: rows.map((r) => [r.target, r.measured, r.beside, r.verdict]),
  };
}

export function figuresTable(runs: BenchRun[]): Table {
  return {
    title: 'Every figure, beside the baseline it ran with',
    notes: ['ratio = value / baseline value (same unit); for records/s higher is better, for times lower is better'],
    columns: ['bench', 'figure', 'value', 'baseline run beside it', 'baseline value', 'ratio'],
    rows: runs.flatMap((run) =>
      (run.result?.figures ?? []).map((f) => [
        run.name,
        f.what,
        withUnit(f),
        f.baseline?.what ?? '-',
        f.baseline ? `${f.baseline.atLeast ? '> ' : ''}${fmt(f.baseline.value)} ${f.unit}` : '-',
        f.ratio === undefined ? '-' : `${f.baseline?.atLeast ? '< ' : ''}${fmt(f.ratio, 2)}×`,
      ]),
    ),
  };
}

function knobsInEffect(env: NodeJS.ProcessEnv): string[] {
  return Object.keys(SIZE_KNOBS).filter((k) => env[k] !== undefined && env[k] !== '').map((k) => `${k}=${env[k]}`);
}

/**
 * The runs RESULTS.md shows: this invocation's, and from the previous ones (`kept`) every bench it
 * did not run, in the order of BENCHES. Pure.
 */
export function mergeRuns(kept: readonly BenchRun[], fresh: readonly BenchRun[]): BenchRun[] {
  const byName = new Map(kept.map((run) => [run.name, run]));
  for (const run of fresh) byName.set(run.name, run);
  return Object.keys(BENCHES).flatMap((name) => byName.get(name) ?? []);
}

/** Runs as kept in results.json (dates as text). */
export function parseKeptRuns(text: string): BenchRun[] {
  const raw = JSON.parse(text) as { runs: Array<Omit<BenchRun, 'startedAt'> & { startedAt: string }> };
  return raw.runs.filter((run) => run.name in BENCHES).map((run) => ({ ...run, startedAt: new Date(run.startedAt) }));
}

/** RESULTS.md. Pure. */
export function resultsMarkdown(runs: BenchRun[], machine: MachineInfo, date: Date): string {
  const figures = runs.flatMap((r) => r.result?.figures ?? []);
  const reduced = runs.filter((run) => run.knobs.length > 0);
  const vm = `${machine.cores}-core VM`;
  const sections = runs.map((run) => {
    const when = `run ${run.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC, took ${run.seconds.toFixed(0)} s, load average ${run.load[0].toFixed(1)} at its start and ${run.load[1].toFixed(1)} at its end`;
    const sizes = run.knobs.length === 0 ? '' : `; sizes reduced: ${run.knobs.join(', ')}`;
    if (!run.result) return `## ${run.name}\n\nNot measured (${when}${sizes}): ${run.error}`;
    return [`## ${run.name}`, `Absolute times measured on this ${vm}; ${when}${sizes}.`, ...run.result.tables.map((t) => formatMarkdown(t, 3))].join('\n\n');
  });
  return [
    '# Benchmark results',
    '',
    `Written by \`npm run bench\` (bench/all.ts) on ${date.toISOString().slice(0, 10)} from the latest run of each bench (bench/results.json; each section gives its own date and load); regenerate rather than edit.`,
    '',
    `Machine: ${describeMachine(machine)}. Every absolute time here was measured on this ${vm}, which other work shared while it ran; the ratios (each against a baseline run beside it, in the same run) are what carries to other machines.`,
    '',
    reduced.length === 0
      ? 'Sizes: the defaults, i.e. the sizes the issues ask for.'
      : `Sizes: **reduced** in ${reduced.map((run) => run.name).join(', ')} (see their sections); the verdicts below are for those sizes, not the issues'.`,
    '',
    formatMarkdown(summaryTable(designTargets(figures)), 2),
    '',
    formatMarkdown(figuresTable(runs), 2),
    '',
    ...sections.flatMap((s) => [s, '']),
    '## Reproduce',
    '',
    '`npm run bench` (root; about 40 minutes here), or some: `BENCH_ONLY=datapath,mesh npm run bench` (replaces those sections and keeps the others), or one part on its own (prints, writes nothing): `npm run bench:datapath`, `bench:apiserver`, `bench:agent`, `bench:health`, `bench:failover`, `bench:mesh`. Smaller runs for a quick look (the verdicts are then not the issues\'):',
    '',
    ...Object.entries(SIZE_KNOBS).map(([k, v]) => `- \`${k}\`: ${v}`),
    '',
  ].join('\n');
}

async function runOne(name: string, run: () => Promise<BenchResult>): Promise<BenchRun> {
  const startedAt = new Date();
  const started = { name, startedAt, knobs: knobsInEffect(process.env) };
  const loadAtStart = loadavg()[0];
  const finished = () => ({ seconds: (Date.now() - startedAt.getTime()) / 1000, load: [loadAtStart, loadavg()[0]] as [number, number] });
  process.stderr.write(`bench: ${name} …\n`);
  try {
    const result = await run();
    process.stdout.write(`${result.tables.map(formatText).join('\n\n')}\n\n`);
    return { ...started, ...finished(), result };
  } catch (err) {
    const error = (err as Error).message.split('\n')[0];
    process.stderr.write(`bench: ${name} failed: ${error}\n`);
    return { ...started, ...finished(), error };
  }
}

function selected(env: NodeJS.ProcessEnv): string[] {
  const only = env.BENCH_ONLY?.split(',').map((s) => s.trim()).filter(Boolean) ?? Object.keys(BENCHES);
  const unknown = only.filter((name) => !(name in BENCHES));
  if (unknown.length > 0) throw new Error(`BENCH_ONLY names ${unknown.join(', ')}: the benches are ${Object.keys(BENCHES).join(', ')}`);
  return only;
}

async function main(): Promise<void> {
  const names = selected(process.env);
  const machine = machineInfo();
  process.stdout.write(`${describeMachine(machine)}\n\n`);
  const fresh: BenchRun[] = [];
  for (const name of names) fresh.push(await runOne(name, BENCHES[name]));
  const path = process.env.BENCH_RESULTS || join(dirname(fileURLToPath(import.meta.url)), '../../bench/RESULTS.md');
  const keptPath = join(dirname(path), 'results.json');
  const runs = mergeRuns(existsSync(keptPath) ? parseKeptRuns(readFileSync(keptPath, 'utf8')) : [], fresh);
  writeFileSync(keptPath, `${JSON.stringify({ runs }, null, 1)}\n`);
  writeFileSync(path, resultsMarkdown(runs, machine, new Date()));
  process.stdout.write(`${formatText(summaryTable(designTargets(runs.flatMap((r) => r.result?.figures ?? []))))}\n\nwrote ${path} and ${keptPath}\n`);
  if (fresh.some((r) => r.error)) process.exitCode = 1;
}

if (isEntryPoint(import.meta.url))
  main().catch((error: Error) => {
    process.stderr.write(`bench: ${error.message}\n`);
    process.exitCode = 1;
  });
