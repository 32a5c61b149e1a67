/**
 * Active TCP health checks of backends, so failover does not wait for Kubernetes (or a silent
 * peer) to notice a dead backend. Each target has its own probe loop; targets come and go with
 * `setTargets` without disturbing the others; at most `maxConcurrentProbes` connects are in flight.
 */
import { probeTcp, type ProbeOutcome } from './probe.js';
import { INITIAL_STATE, nextState, type TargetState, type Thresholds } from './state.js';
import { targetKey, type HealthStatus, type HealthTarget } from './types.js';

export interface HealthCheckerOptions extends Thresholds {
  /** time between the starts of two probes of one target (a probe slower than this is followed at once) */
  intervalMs: number;
  timeoutMs: number;
  maxConcurrentProbes: number;
}

/**
 * An abruptly killed process answers the next probe with a reset: quarantined within one interval
 * (≤ 300 ms). A dead host or a dropped link answers nothing: the probe after death starts within
 * one interval and times out, the next starts at once and times out, so quarantine comes within
 * 300 + 2 × 500 = 1300 ms, under the 2 s budget with room for the merge and map write. 500 ms is
 * far above an in-mesh connect time (a lost SYN is retransmitted only after 1 s, which is why one
 * timeout alone never quarantines). Two successes to recover keep a flapping backend out.
 * 64 concurrent connects bound the agent's sockets on a node with many backends.
 */
export const DEFAULT_HEALTH_OPTIONS: HealthCheckerOptions = Object.freeze({
  intervalMs: 300,
  timeoutMs: 500,
  failureThreshold: 2,
  successThreshold: 2,
  maxConcurrentProbes: 64,
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
  timer?: NodeJS.Timeout;
  removed: boolean;
}

/** A counting semaphore: a FIFO of probes waiting for a connect slot. */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  constructor(size: number) {
    this.free = size;
  }
  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
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
  private readonly slots: Slots;
  private readonly closing = new AbortController();

  constructor(options: Partial<HealthCheckerOptions> = {}) {
    this.options = validate({ ...DEFAULT_HEALTH_OPTIONS, ...options });
    this.slots = new Slots(this.options.maxConcurrentProbes);
  }

  /** The full set to probe: new targets start at once (status unknown), missing ones stop, the rest go on untouched. */
  setTargets(targets: readonly HealthTarget[]): void {
    if (this.closing.signal.aborted) throw new Error('health checker is closed; create a new one');
    const wanted = new Map(targets.map((t) => [targetKey(t), t]));
    for (const [key, probed] of this.targets) {
      if (!wanted.has(key)) this.stop(key, probed);
    }
    for (const [key, target] of wanted) {
      if (!this.targets.has(key)) this.start(key, { ...target });
    }
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
    for (const [key, probed] of this.targets) this.stop(key, probed);
    this.listeners.clear();
  }

  private start(key: string, target: HealthTarget): void {
    const probed: Probed = { target, state: INITIAL_STATE, removed: false };
    this.targets.set(key, probed);
    this.schedule(probed, 0);
  }

  private stop(key: string, probed: Probed): void {
    probed.removed = true;
    clearTimeout(probed.timer);
    this.targets.delete(key);
  }

  private schedule(probed: Probed, delayMs: number): void {
    probed.timer = setTimeout(() => void this.probeOnce(probed), delayMs);
  }

  private async probeOnce(probed: Probed): Promise<void> {
    await this.slots.acquire();
    if (probed.removed) {
      this.slots.release();
      return;
    }
    const startedAt = Date.now();
    let outcome: ProbeOutcome;
    try {
      outcome = await probeTcp(probed.target, this.options.timeoutMs, this.closing.signal);
    } finally {
      this.slots.release();
    }
    if (probed.removed) return;
    // Next probe first, so a throwing listener cannot end this target's loop.
    this.schedule(probed, Math.max(0, this.options.intervalMs - (Date.now() - startedAt)));
    this.record(probed, outcome);
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
