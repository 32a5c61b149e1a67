/**
 * Active TCP health checks of backends, so failover does not wait for Kubernetes (or a silent
 * peer) to notice a dead backend. Targets come and go with `setTargets` without disturbing the
 * others. Two schedules (queues by due time) hold every target, one for the targets in use and one
 * for the standby ones: at most `maxConcurrentProbes` connects are in flight and at most
 * `maxProbesPerSecond` start, so a mesh of 100k backends costs a bounded CPU share and one small
 * record per target (not a timer and a waiting probe each). A target in use that is due always
 * starts before a standby one, so only the number of targets in use stretches their interval
 * (past rate × interval of them); standby targets share what is left.
 */
import { createStopController } from '../../lib/kvstore/retry.js';
import { DueQueue } from './due-queue.js';
import { probeTcp, type ProbeOutcome } from './probe.js';
import { INITIAL_STATE, nextState, type TargetState, type Thresholds } from './state.js';
import { targetKey, type HealthStatus, type HealthTarget, type ProbeTarget } from './types.js';

/** One probe of a target: `probeTcp`, or a stand-in that observes or replaces it (benchmarks, tests). */
export type Probe = (target: HealthTarget, timeoutMs: number, signal: AbortSignal) => Promise<ProbeOutcome>;

export interface HealthCheckerOptions extends Thresholds {
  /** time between the starts of two probes of one target (a probe slower than this is followed at once) */
  intervalMs: number;
  timeoutMs: number;
  maxConcurrentProbes: number;
  /** probe starts per second at most, over all targets */
  maxProbesPerSecond: number;
}

/**
 * An abruptly killed process answers the next probe with a reset: quarantined within one interval
 * (≤ 300 ms). A dead host or a dropped link answers nothing: the probe after death starts within
 * one interval and times out, the next starts at once and times out, so quarantine comes within
 * 300 + 2 × 500 = 1300 ms, under the 2 s budget with room for the merge and map write. 500 ms is
 * far above an in-mesh connect time (a lost SYN is retransmitted only after 1 s, which is why one
 * timeout alone never quarantines). Two successes to recover keep a flapping backend out.
 * 64 concurrent connects bound the agent's sockets on a node with many backends. 2,000 probe
 * starts a second keep 600 targets in use at the full 300 ms pace and cost a few percent of one
 * core; only what the probe plan (probe-plan.ts) puts in use counts against them, however many
 * remote backends stand by (bench/health.ts: 2,000 in use are probed every ~1 s).
 */
export const DEFAULT_HEALTH_OPTIONS: HealthCheckerOptions = Object.freeze({
  intervalMs: 300,
  timeoutMs: 500,
  failureThreshold: 2,
  successThreshold: 2,
  maxConcurrentProbes: 64,
  maxProbesPerSecond: 2000,
});

export interface HealthTransition {
  target: HealthTarget;
  from: HealthStatus;
  to: HealthStatus;
  /** what the deciding probe saw: "connected", "ECONNREFUSED", "no answer within 500 ms", … */
  detail: string;
}

export type TransitionListener = (transition: HealthTransition) => void;

interface Probed {
  target: HealthTarget;
  state: TargetState;
  standby: boolean;
  /** its one live entry in a schedule; null while its probe runs (or once removed) */
  entry: Scheduled | null;
  removed: boolean;
}

/** A place in a schedule; stale (skipped when it comes up) once its target moved or left. */
interface Scheduled {
  /** when the probe may start (Date.now() time) */
  dueAtMs: number;
  probed: Probed;
}

function validate(o: HealthCheckerOptions): HealthCheckerOptions {
  for (const [name, value] of Object.entries(o)) {
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`health checker option ${name} must be a positive integer (got ${value})`);
    }
  }
  return o;
}

export class HealthChecker {
  private readonly options: HealthCheckerOptions;
  private readonly targets = new Map<string, Probed>();
  private readonly listeners = new Set<TransitionListener>();
  /** the targets in use, and the standby ones: each live target once, stale entries skipped when they come up */
  private readonly inUse = new DueQueue<Scheduled>();
  private readonly standby = new DueQueue<Scheduled>();
  /** every probe in flight listens to it */
  private readonly closing = createStopController();
  private inFlight = 0;
  /** the rate budget: the next probe start allowed */
  private nextStartAtMs = 0;
  private pumpTimer: NodeJS.Timeout | undefined;
  private pumpAtMs = Infinity;

  constructor(
    options: Partial<HealthCheckerOptions> = {},
    private readonly probe: Probe = probeTcp,
  ) {
    this.options = validate({ ...DEFAULT_HEALTH_OPTIONS, ...options });
  }

  /**
   * The full set to probe: new targets start at once (status unknown), missing ones stop, the rest
   * go on with their status and due time, moving between in use and standby as the plan says.
   */
  setTargets(targets: readonly ProbeTarget[]): void {
    if (this.closing.signal.aborted) throw new Error('health checker is closed; create a new one');
    const wanted = new Map<string, ProbeTarget>();
    for (const t of targets) if (!wanted.has(targetKey(t))) wanted.set(targetKey(t), t); // the first claim names it
    for (const [key, probed] of this.targets) {
      if (!wanted.has(key)) this.stop(key, probed);
    }
    const nowMs = Date.now();
    for (const [key, target] of wanted) {
      const standby = target.standby === true;
      const known = this.targets.get(key);
      if (known) {
        if (known.standby !== standby) this.move(known, standby);
        continue;
      }
      const probed: Probed = {
        target: { clusterId: target.clusterId, addr: target.addr, port: target.port },
        state: INITIAL_STATE,
        standby,
        entry: null,
        removed: false,
      };
      this.targets.set(key, probed);
      this.enqueue(probed, nowMs);
    }
    this.pump();
  }

  status(target: HealthTarget): HealthStatus {
    return this.targets.get(targetKey(target))?.state.status ?? 'unknown';
  }

  /** Called on every status change; returns the unsubscribe function. */
  onTransition(listener: TransitionListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.closing.abort();
    clearTimeout(this.pumpTimer);
    for (const [key, probed] of this.targets) this.stop(key, probed);
    this.inUse.clear();
    this.standby.clear();
    this.listeners.clear();
  }

  private stop(key: string, probed: Probed): void {
    probed.removed = true;
    probed.entry = null;
    this.targets.delete(key);
  }

  private enqueue(probed: Probed, dueAtMs: number): void {
    probed.entry = { dueAtMs, probed };
    (probed.standby ? this.standby : this.inUse).push(probed.entry);
  }

  /** Into the other schedule, due when it was (a probe running now reschedules it there itself). */
  private move(probed: Probed, standby: boolean): void {
    probed.standby = standby;
    if (probed.entry) this.enqueue(probed, probed.entry.dueAtMs);
  }

  /** The earliest live entry of a schedule, stale ones dropped on the way. */
  private head(schedule: DueQueue<Scheduled>): Scheduled | undefined {
    for (let entry = schedule.peek(); entry; entry = schedule.peek()) {
      if (entry.probed.entry === entry) return entry;
      schedule.pop();
    }
    return undefined;
  }

  /** A target in use due by the time the next probe may start goes first; else whichever is due first. */
  private nextDue(startAtMs: number): { entry: Scheduled; schedule: DueQueue<Scheduled> } | undefined {
    const used = this.head(this.inUse);
    const spare = this.head(this.standby);
    if (used && (!spare || used.dueAtMs <= Math.max(startAtMs, spare.dueAtMs))) return { entry: used, schedule: this.inUse };
    return spare && { entry: spare, schedule: this.standby };
  }

  /** Starts every probe that is due, within the connect and rate budgets; arms a timer for the next. */
  private pump(): void {
    if (this.closing.signal.aborted) return;
    const nowMs = Date.now();
    const spacingMs = 1000 / this.options.maxProbesPerSecond;
    while (this.inFlight < this.options.maxConcurrentProbes) {
      const next = this.nextDue(Math.max(nowMs, this.nextStartAtMs));
      if (!next) return;
      const startAtMs = Math.max(next.entry.dueAtMs, this.nextStartAtMs);
      if (startAtMs > nowMs) return this.pumpAt(startAtMs);
      next.schedule.pop();
      next.entry.probed.entry = null;
      // Idle time earns at most one interval of starts (a burst still bounded by the connect slots).
      this.nextStartAtMs = Math.max(this.nextStartAtMs, nowMs - this.options.intervalMs) + spacingMs;
      void this.probeOnce(next.entry.probed, nowMs);
    }
  }

  private pumpAt(atMs: number): void {
    if (this.pumpTimer && this.pumpAtMs <= atMs) return;
    clearTimeout(this.pumpTimer);
    this.pumpAtMs = atMs;
    this.pumpTimer = setTimeout(() => {
      this.pumpTimer = undefined;
      this.pumpAtMs = Infinity;
      this.pump();
    }, atMs - Date.now());
  }

  private async probeOnce(probed: Probed, startedAtMs: number): Promise<void> {
    this.inFlight++;
    let outcome: ProbeOutcome;
    try {
      outcome = await this.probe(probed.target, this.options.timeoutMs, this.closing.signal);
    } finally {
      this.inFlight--;
    }
    // Rescheduled first, so a throwing listener cannot end this target's probes.
    if (!probed.removed) this.enqueue(probed, startedAtMs + this.options.intervalMs);
    this.pump();
    if (!probed.removed) this.record(probed, outcome);
  }

  private record(probed: Probed, outcome: ProbeOutcome): void {
    const from = probed.state.status;
    probed.state = nextState(probed.state, outcome.result, this.options);
    if (probed.state.status === from) return;
    const transition = {
      target: { ...probed.target },
      from,
      to: probed.state.status,
      detail: outcome.detail,
    };
    for (const listener of this.listeners) listener(transition);
  }
}
