/**
 * The one gate every listing of a WatchStore after its first passes: exponential backoff per
 * store, so a watch that breaks right after each listing (a flapping link, a peer compacting in a
 * loop, a canary toggled by a hostile peer) re-reads its prefix once per backoff step instead of
 * in a tight loop. A store whose watch stayed up for `resetAfterMs` starts again from the shortest
 * delay. One limiter per process (`relistLimiter`) counts every relist of the process.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_BACKOFF, type BackoffOptions } from './retry.js';

export interface RelistLimiterOptions {
  /** A watch that lived this long ends a streak of relists (default: twice the longest delay). */
  resetAfterMs?: number;
  now?: () => number;
  /** [0, 1): the jitter, so the stores of many agents do not relist in step. */
  random?: () => number;
}

export interface RelistLimiterCounters {
  /** listings let through after a store's first (each failed one included) */
  granted: number;
  /** the time they were held back, summed */
  delayedMs: number;
}

/**
 * Pure: the delay before the `streak`-th listing in a row (1-based): min·2^(streak-1), capped
 * at max, then jittered into its upper half so it never drops below half the nominal step.
 */
export function relistDelayMs(streak: number, backoff: Required<BackoffOptions>, random: number): number {
  const nominal = Math.min(backoff.maxTimeoutMs, backoff.minTimeoutMs * 2 ** Math.min(streak - 1, 30));
  return Math.round(nominal / 2 + (nominal / 2) * random);
}

/** What the schedules of one limiter share. */
interface Shared {
  counters: RelistLimiterCounters;
  now: () => number;
  random: () => number;
}

export class RelistLimiter {
  readonly counters: RelistLimiterCounters = { granted: 0, delayedMs: 0 };

  constructor(private readonly opts: RelistLimiterOptions = {}) {}

  /** The schedule of one store, with its backoff steps. */
  schedule(backoff: BackoffOptions = {}): RelistSchedule {
    const steps = {
      minTimeoutMs: backoff.minTimeoutMs ?? DEFAULT_BACKOFF.minTimeoutMs,
      maxTimeoutMs: backoff.maxTimeoutMs ?? DEFAULT_BACKOFF.maxTimeoutMs,
    };
    return new RelistSchedule(steps, this.opts.resetAfterMs ?? 2 * steps.maxTimeoutMs, {
      counters: this.counters,
      now: this.opts.now ?? Date.now,
      random: this.opts.random ?? Math.random,
    });
  }
}

export class RelistSchedule {
  private streak = 0;
  private watchingSince: number | null = null;

  constructor(
    private readonly steps: Required<BackoffOptions>,
    private readonly resetAfterMs: number,
    private readonly shared: Shared,
  ) {}

  /** Listings in a row without a watch that lasted (0 after a long healthy watch). */
  get consecutive(): number {
    return this.streak;
  }

  /** Waits for the next listing's turn; rejects with the abort reason when `signal` aborts. */
  async next(signal: AbortSignal): Promise<void> {
    const { counters, now, random } = this.shared;
    if (this.watchingSince !== null && now() - this.watchingSince >= this.resetAfterMs) this.streak = 0;
    this.watchingSince = null;
    this.streak++;
    const delayMs = relistDelayMs(this.streak, this.steps, random());
    counters.granted++;
    counters.delayedMs += delayMs;
    await sleep(delayMs, undefined, { signal });
  }

  /** The watch after a listing is up: how long it lasts decides whether the streak ends. */
  watching(): void {
    this.watchingSince = this.shared.now();
  }
}

/** The process's limiter: every WatchStore uses it unless given its own. */
export const relistLimiter = new RelistLimiter();
