/**
 * Failover benchmark (issue 6): one lab (prefix `cmbench`, under the lab lock so it never overlaps
 * a test's lab), N repetitions each of e2e scenario 1 (graceful: EndpointSlice first, then the
 * processes stop) and scenario 2 (abrupt: processes killed while listed), driven by the e2e
 * scenario drivers themselves; failover time and failed requests as min / median / p95 / max.
 *
 * Baseline beside them: the client node's agent restarted with `--no-health-checks`, i.e. trusting
 * Kubernetes readiness alone (what Cilium without active health checks does). Graceful is repeated
 * the same way. Abrupt runs once: the dead pods stay listed, and nothing moves traffic until
 * Kubernetes marks them not ready, which the lab never does, so it cannot recover inside the
 * driver's switch window; that window is reported as the baseline's lower bound.
 *
 * Run: npm run bench:failover (root). Smaller runs: BENCH_FAILOVER_REPS=5 BENCH_FAILOVER_BASELINE_REPS=2.
 */
import { labsWithState } from '../lab/topology/host.js';
import { addAgentArgs } from '../e2e/scenarios/daemons.js';
import { FAILOVER_RATE, abruptFailover, gracefulFailover } from '../e2e/scenarios/failover.js';
import type { ScenarioResult } from '../e2e/scenarios/result.js';
import { LOCAL, type E2eEnv, setUpSuite, tearDownSuite, waitBaseline } from '../e2e/scenarios/suite.js';
import { acquireLabLock } from '../test/harness/lab-lock.js';
import { type BenchResult, type Figure, type Table, distribution, envInt, figure, runStandalone } from './report.js';

export const BENCH_PREFIX = 'cmbench';
const REPS = envInt('BENCH_FAILOVER_REPS', 20);
const BASELINE_REPS = envInt('BENCH_FAILOVER_BASELINE_REPS', 5);
/** a series stops after this many runs that threw (each one already restored the baseline) */
const MAX_ERRORS = 3;

/** The runs of one scenario under one configuration; a run that threw did not recover. */
export interface Series {
  label: string;
  results: ScenarioResult[];
  errors: string[];
}

type Driver = (env: E2eEnv) => Promise<ScenarioResult>;

const progress = (line: string) => process.stderr.write(`bench:failover: ${line}\n`);

async function runSeries(env: E2eEnv, label: string, reps: number, driver: Driver): Promise<Series> {
  const series: Series = { label, results: [], errors: [] };
  for (let i = 1; i <= reps && series.errors.length < MAX_ERRORS; i++) {
    try {
      const r = await driver(env);
      series.results.push(r);
      progress(`${label} ${i}/${reps}: ${r.recoveryMs ?? '-'} ms, ${r.failed}/${r.requests} failed`);
    } catch (err) {
      // the first line, without the records the driver appends
      const message = (err as Error).message.split('\n')[0].split('; last seen:')[0];
      if (/restoring the baseline failed/.test((err as Error).message)) throw err;
      series.errors.push(message);
      progress(`${label} ${i}/${reps}: did not recover (${message})`);
    }
  }
  return series;
}

/** The switch window a run that never moved traffic waited out, read from the driver's timeout. Pure. */
export function unrecoveredWindowMs(errorMessage: string): number | undefined {
  const m = /timed out after (\d+) ms/.exec(errorMessage);
  return m ? Number(m[1]) : undefined;
}

const spread = (samples: number[], unit = '') => {
  if (samples.length === 0) return '-';
  const d = distribution(samples);
  return `${d.min}${unit} / ${d.p50}${unit} / ${d.p95}${unit} / ${d.max}${unit}`;
};

/** Failed requests of every run of a series by error, e.g. "ECONNRESET ×2". Pure. */
export function errorTotals(results: readonly ScenarioResult[]): string {
  const totals = new Map<string, number>();
  for (const r of results) {
    const kinds = r.facts.errors;
    if (kinds && typeof kinds === 'object') for (const [kind, n] of Object.entries(kinds)) totals.set(kind, (totals.get(kind) ?? 0) + n);
  }
  return totals.size === 0 ? '-' : [...totals].map(([kind, n]) => `${kind} ×${n}`).join(', ');
}

const recoveryTimes = (s: Series) => s.results.flatMap((r) => (r.recoveryMs === null ? [] : [r.recoveryMs]));
const failures = (s: Series) => s.results.map((r) => r.failed);

/** The table of every series. Pure. */
export function failoverTable(series: Series[], rate: number): Table {
  return {
    title: 'Failover on the lab: e2e scenarios 1 (graceful) and 2 (abrupt), repeated',
    notes: [
      `client pod in east → the echo ClusterIP at ${rate} requests/s (400 ms timeout each); min / median / p95 / max over the runs;`,
      'graceful time: EndpointSlice update → first answer from west; abrupt time: pods killed → first success after the last failure;',
      `both are read off request send times, so they resolve to the request spacing (${Math.round(1000 / rate)} ms);`,
      'baseline: the client node\'s agent with --no-health-checks (Kubernetes readiness only, like Cilium without active health checks);',
      'abrupt baseline: the killed pods stay listed ready, and only Kubernetes marking them not ready would move traffic (for a dead node,',
      'node-monitor-grace-period: 40-50 s); the lab has no such controller, so the driver gives up after its switch window',
    ],
    columns: ['scenario', 'runs', 'failover time (ms)', 'failed requests', 'requests per run (median)', 'errors, all runs', 'runs not recovered'],
    rows: series.map((s) => [
      s.label,
      s.results.length + s.errors.length,
      s.errors.length > 0 && s.results.length === 0 ? `> ${unrecoveredWindowMs(s.errors[0]) ?? '?'} (not recovered)` : spread(recoveryTimes(s)),
      spread(failures(s)),
      s.results.length > 0 ? distribution(s.results.map((r) => r.requests)).p50 : '-',
      errorTotals(s.results),
      s.errors.length === 0 ? 0 : `${s.errors.length}: ${s.errors[0]}`,
    ]),
  };
}

export interface FailoverRuns {
  graceful: Series;
  abrupt: Series;
  gracefulBaseline: Series;
  abruptBaseline: Series;
}

/** Headline figures for RESULTS.md and the DESIGN §8 summary. Pure. */
export function failoverFigures(runs: FailoverRuns): Figure[] {
  const out: Figure[] = [];
  const g = recoveryTimes(runs.graceful);
  const gb = recoveryTimes(runs.gracefulBaseline);
  if (g.length > 0) {
    out.push(
      figure('failover.graceful.time.p50', 'graceful failover: slice update → first answer from west, median', distribution(g).p50, 'ms',
        gb.length > 0 ? { what: 'same, health checks off', value: distribution(gb).p50 } : undefined),
      figure('failover.graceful.failed.max', `graceful failover: failed requests, worst of ${runs.graceful.results.length} runs`, Math.max(...failures(runs.graceful)), 'requests',
        runs.gracefulBaseline.results.length > 0 ? { what: 'same, health checks off', value: Math.max(...failures(runs.gracefulBaseline)) } : undefined),
    );
  }
  if (runs.graceful.errors.length > 0)
    out.push(figure('failover.graceful.unrecovered', 'graceful failover runs that did not move to west', runs.graceful.errors.length, 'runs'));
  const a = recoveryTimes(runs.abrupt);
  const window = runs.abruptBaseline.errors.map(unrecoveredWindowMs).find((w) => w !== undefined);
  const abruptBaseline = window !== undefined ? { what: `health checks off: not recovered within ${window} ms`, value: window, atLeast: true } : undefined;
  if (a.length > 0) {
    const d = distribution(a);
    out.push(
      figure('failover.abrupt.time.p50', 'abrupt failover: kill → full recovery, median', d.p50, 'ms', abruptBaseline),
      figure('failover.abrupt.time.max', `abrupt failover: kill → full recovery, worst of ${a.length} runs`, d.max, 'ms', abruptBaseline),
      figure('failover.abrupt.failed.max', `abrupt failover: failed requests, worst of ${a.length} runs`, Math.max(...failures(runs.abrupt)), 'requests'),
    );
  }
  out.push(figure('failover.abrupt.unrecovered', `abrupt failover runs that did not recover (of ${runs.abrupt.results.length + runs.abrupt.errors.length})`, runs.abrupt.errors.length, 'runs'));
  return out;
}

/** Refuses, in one line, when another lab is up: every lab uses the same address plan. */
function assertNoOtherLab(): void {
  const others = labsWithState().filter((prefix) => prefix !== BENCH_PREFIX);
  if (others.length > 0)
    throw new Error(`lab ${others.join(', ')} is up and shares the address plan: bring it down first (clustermesh lab down --prefix ${others[0]})`);
}

async function measure(env: E2eEnv): Promise<FailoverRuns> {
  const graceful = await runSeries(env, 'graceful', REPS, (e) => gracefulFailover(e));
  const abrupt = await runSeries(env, 'abrupt', REPS, (e) => abruptFailover(e));
  // the baseline last: the lab is torn down afterwards, so the agent is never switched back
  await addAgentArgs(env.running, LOCAL, ['--no-health-checks']);
  await waitBaseline(env);
  progress(`${LOCAL}'s agents restarted with --no-health-checks`);
  const gracefulBaseline = await runSeries(env, 'graceful, health checks off (baseline)', BASELINE_REPS, (e) => gracefulFailover(e));
  const abruptBaseline = await runSeries(env, 'abrupt, health checks off (baseline)', 1, (e) => abruptFailover(e));
  return { graceful, abrupt, gracefulBaseline, abruptBaseline };
}

/** Brings the lab up, runs every series, always tears the lab down and releases the lock. */
export async function runFailoverBench(): Promise<BenchResult> {
  if (process.getuid?.() !== 0) throw new Error('the failover benchmark needs root (the lab): run it as root');
  const releaseLock = await acquireLabLock();
  try {
    assertNoOtherLab();
    let runs: FailoverRuns;
    try {
      const env = await setUpSuite({ prefix: BENCH_PREFIX, progress });
      runs = await measure(env);
    } finally {
      await tearDownSuite(BENCH_PREFIX);
    }
    const series = [runs.graceful, runs.gracefulBaseline, runs.abrupt, runs.abruptBaseline];
    return { name: 'failover', tables: [failoverTable(series, FAILOVER_RATE)], figures: failoverFigures(runs) };
  } finally {
    releaseLock();
  }
}

runStandalone(import.meta.url, runFailoverBench);
