/**
 * A per-key work queue, as client-go's: a key added many times before it is processed is processed
 * once (events coalesce), a key is never processed twice at the same time, and a key whose handler
 * fails is retried later with a per-key backoff. Handlers read the latest state themselves, so the
 * queue carries only keys.
 */
import type { Logger } from 'pino';
import { errorMessage } from '../lib/errors.js';

export type KeyHandler = (key: string) => void | Promise<void>;

export interface WorkQueueOptions {
  name: string;
  handler: KeyHandler;
  logger: Logger;
  /** called once per failed attempt (metrics) */
  onError?: (key: string, err: unknown) => void;
  /** called after a successful run with the time since the key was first added (sync latency) */
  onHandled?: (key: string, waitedMs: number) => void;
  /** keys handled before yielding to the event loop, so informer events keep flowing (default 200) */
  batchSize?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
}

interface FlushWaiter {
  remaining: Set<string>;
  resolve: () => void;
}

export class WorkQueue {
  /** insertion-ordered: keys are processed first-in first-out */
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  /** keys added while being processed: queued again when that run ends */
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();
  private readonly enqueuedAt = new Map<string, number>();
  private flushWaiters: FlushWaiter[] = [];
  private scheduled = false;
  private shuttingDown = false;
  /** keys collect (deduplicated) until run(): a controller waits for its caches before working */
  private running = false;

  constructor(private readonly opts: WorkQueueOptions) {}

  add(key: string): void {
    if (this.shuttingDown) return;
    if (!this.enqueuedAt.has(key)) this.enqueuedAt.set(key, performance.now());
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    this.queued.add(key);
    this.schedule();
  }

  /** Starts handling keys; call once the informers the handler reads have synced. */
  run(): void {
    this.running = true;
    if (this.queued.size > 0) this.schedule();
  }

  get name(): string {
    return this.opts.name;
  }

  /** keys waiting or being processed */
  get depth(): number {
    return this.queued.size + this.processing.size;
  }

  /**
   * Resolves once every key queued or in progress now has been handled by a run that began after
   * this call: everything the caches held at this moment has reached the handler.
   */
  flushed(): Promise<void> {
    const remaining = new Set([...this.queued, ...this.processing]);
    for (const key of this.processing) this.dirty.add(key);
    if (remaining.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.flushWaiters.push({ remaining, resolve }));
  }

  /** Stops accepting keys and handles what is queued (retries pending a backoff are dropped). */
  async shutDown(): Promise<void> {
    this.shuttingDown = true;
    this.retryTimers.forEach((timer) => clearTimeout(timer));
    this.retryTimers.clear();
    // never started: its caches never synced, so what is queued cannot be reconciled correctly
    if (!this.running) this.queued.clear();
    await this.flushed();
  }

  private schedule(): void {
    if (this.scheduled || !this.running) return;
    this.scheduled = true;
    setImmediate(() => void this.runBatch());
  }

  private async runBatch(): Promise<void> {
    this.scheduled = false;
    const batchSize = this.opts.batchSize ?? 200;
    for (let i = 0; i < batchSize; i++) {
      const key = this.queued.values().next().value;
      if (key === undefined) return;
      this.queued.delete(key);
      await this.process(key);
    }
    if (this.queued.size > 0) this.schedule();
  }

  private async process(key: string): Promise<void> {
    this.processing.add(key);
    const addedAt = this.enqueuedAt.get(key) ?? performance.now();
    this.enqueuedAt.delete(key);
    try {
      const pending = this.opts.handler(key);
      if (pending) await pending;
      this.failures.delete(key);
      this.opts.onHandled?.(key, performance.now() - addedAt);
    } catch (err) {
      this.retryLater(key, err);
    } finally {
      this.processing.delete(key);
      this.settle(key);
    }
  }

  private settle(key: string): void {
    for (const waiter of this.flushWaiters) waiter.remaining.delete(key);
    const done = this.flushWaiters.filter((w) => w.remaining.size === 0);
    this.flushWaiters = this.flushWaiters.filter((w) => w.remaining.size > 0);
    done.forEach((w) => w.resolve());
    if (this.dirty.delete(key)) {
      this.queued.add(key);
      this.schedule();
    }
  }

  private retryLater(key: string, err: unknown): void {
    const attempt = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, attempt);
    this.opts.onError?.(key, err);
    const min = this.opts.retryMinMs ?? 100;
    const delayMs = Math.min(min * 2 ** (attempt - 1), this.opts.retryMaxMs ?? 30_000);
    this.opts.logger.warn(
      { queue: this.opts.name, key, attempt, retryInMs: delayMs },
      `reconciling ${key} failed: ${errorMessage(err)}`,
    );
    if (this.shuttingDown || this.retryTimers.has(key)) return;
    const timer = setTimeout(() => {
      this.retryTimers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.retryTimers.set(key, timer);
  }
}
