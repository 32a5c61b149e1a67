/**
 * SyncStore: the write side of one kvstore prefix, after Cilium's SyncStore.
 *
 * - upsert/delete are queued per key; a newer op for a key replaces the pending one (coalescing).
 * - start() reads the prefix first, so a write whose bytes equal what is in etcd is skipped: a
 *   restarted writer does not rewrite unchanged keys.
 * - After markInitialSyncDone(), keys listed at start that the writer did not upsert again are
 *   deleted, and once every key queued up to that moment is written the canary is put.
 * - Every etcd op is retried with backoff until it succeeds or the store stops.
 * - With leaseTTLSeconds the keys are ephemeral; if the lease is lost they are all written again.
 */
import { Etcd3, Lease } from 'etcd3';
import type { Logger } from 'pino';
import { encodeTimestamp } from './codecs.js';
import { Latch } from './latch.js';
import { createStopController, retryEtcdOp, type BackoffOptions } from './retry.js';

export interface SyncStoreOptions {
  client: Etcd3;
  /** The prefix this store owns, e.g. `cilium/state/services/v1/west/`. */
  prefix: string;
  /** Written after the initial sync, e.g. `cilium/synced/west/cilium/state/services/v1`. */
  canaryKey?: string;
  leaseTTLSeconds?: number;
  /** Concurrent etcd ops (default 32). */
  maxInFlight?: number;
  backoff?: BackoffOptions;
  logger?: Logger;
  /** Endpoints, only to word error messages. */
  endpoints?: string[];
}

export interface SyncStoreCounters {
  /** Puts that reached etcd (the canary excluded). */
  writes: number;
  deletes: number;
  /** Ops dropped because etcd already held those bytes (or did not hold the key). */
  skipped: number;
  /** Failed attempts (each is retried). */
  errors: number;
}

type Op = { type: 'upsert'; value: Buffer } | { type: 'delete' };

export class SyncStore {
  readonly counters: SyncStoreCounters = { writes: 0, deletes: 0, skipped: 0, errors: 0 };
  private readonly pending = new Map<string, Op>();
  private readonly inFlight = new Set<string>();
  /** What etcd holds under the prefix, as far as this writer knows. */
  private readonly inEtcd = new Map<string, Buffer>();
  /** What the owner wants; rewritten in full when the lease is lost. */
  private readonly desired = new Map<string, Buffer>();
  /** Keys listed at start and not touched since: deleted after the initial sync. */
  private untouchedSinceStart = new Set<string>();
  /** Keys that must be written before the canary; null until markInitialSyncDone(). */
  private awaitingInitial: Set<string> | null = null;
  private started = false;
  private initialSyncMarked = false;
  private readonly abort = createStopController();
  private readonly maxInFlight: number;
  private lease: Lease | null = null;
  private readonly idleWaiters: Array<() => void> = [];
  /** open once the canary is written */
  private readonly canaryWritten = new Latch();

  constructor(private readonly opts: SyncStoreOptions) {
    if (!opts.prefix.endsWith('/')) throw new Error(`SyncStore prefix "${opts.prefix}" must end with "/"`);
    this.maxInFlight = opts.maxInFlight ?? 32;
  }

  /** Reads the prefix (retrying until etcd answers), then starts writing queued ops. */
  async start(): Promise<void> {
    if (this.opts.leaseTTLSeconds) this.lease = this.newLease();
    const listed = await this.retry('list', () =>
      this.opts.client.getAll().prefix(this.opts.prefix).buffers(),
    );
    for (const [key, value] of Object.entries(listed)) this.inEtcd.set(key, value);
    // A leased store owns no key it did not write under its own lease: rewrite everything.
    if (this.lease) this.inEtcd.clear();
    this.untouchedSinceStart = new Set(
      Object.keys(listed).filter((key) => !this.desired.has(key) && !this.pending.has(key)),
    );
    this.started = true;
    if (this.initialSyncMarked) this.awaitInitialKeys();
    this.pump();
  }

  upsert(key: string, value: string | Uint8Array): void {
    this.assertOwned(key);
    const bytes = Buffer.from(value);
    this.desired.set(key, bytes);
    this.enqueue(key, { type: 'upsert', value: bytes });
  }

  delete(key: string): void {
    this.assertOwned(key);
    this.desired.delete(key);
    this.enqueue(key, { type: 'delete' });
  }

  /**
   * The owner has upserted every key of its initial listing. Stale keys are deleted and the canary
   * is written once all of them (and the deletions) are done.
   */
  markInitialSyncDone(): void {
    if (this.initialSyncMarked) return;
    this.initialSyncMarked = true;
    if (this.started) this.awaitInitialKeys();
  }

  /** True once the canary is written (or, without a canary key, once the initial sync is done). */
  get synced(): boolean {
    return this.canaryWritten.isOpen;
  }

  whenSynced(): Promise<void> {
    return this.canaryWritten.wait();
  }

  /** Ops waiting or being written. */
  get queueSize(): number {
    let size = this.pending.size;
    for (const key of this.inFlight) if (!this.pending.has(key)) size++;
    return size;
  }

  /** Resolves when nothing is queued or being written. */
  drain(): Promise<void> {
    return this.queueSize === 0
      ? Promise.resolve()
      : new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops retrying and writing. A lease is released (not revoked): its keys expire with its TTL. */
  async stop(): Promise<void> {
    this.abort.abort(new Error('SyncStore stopped'));
    this.pending.clear();
    await this.drain();
    this.lease?.release();
  }

  private assertOwned(key: string): void {
    if (!key.startsWith(this.opts.prefix))
      throw new Error(`key ${key} is outside this store's prefix ${this.opts.prefix}`);
  }

  private enqueue(key: string, op: Op): void {
    if (this.abort.signal.aborted) return;
    this.untouchedSinceStart.delete(key);
    this.pending.set(key, op);
    this.pump();
  }

  private pump(): void {
    if (!this.started || this.abort.signal.aborted) return;
    for (const key of this.pending.keys()) {
      if (this.inFlight.size >= this.maxInFlight) return;
      if (this.inFlight.has(key)) continue;
      const op = this.pending.get(key)!;
      this.pending.delete(key);
      this.inFlight.add(key);
      void this.apply(key, op).then((done) => this.settle(key, done));
    }
  }

  /** Resolves true when etcd now matches `op`, false when superseded by a newer op or stopped. */
  private async apply(key: string, op: Op): Promise<boolean> {
    if (this.isUnchanged(key, op)) {
      this.counters.skipped++;
      return true;
    }
    let performed: boolean;
    try {
      performed = await this.retry(key, async () => {
        // A newer op for this key supersedes this one: stop retrying a stale value.
        if (this.pending.has(key)) return false;
        if (op.type === 'upsert') await this.put(key, op.value);
        else await this.opts.client.delete().key(key).exec();
        return true;
      });
    } catch {
      return false; // aborted by stop()
    }
    if (!performed) return false;
    if (op.type === 'upsert') {
      this.inEtcd.set(key, op.value);
      this.counters.writes++;
    } else {
      this.inEtcd.delete(key);
      this.counters.deletes++;
    }
    return true;
  }

  private isUnchanged(key: string, op: Op): boolean {
    const current = this.inEtcd.get(key);
    return op.type === 'upsert' ? current !== undefined && current.equals(op.value) : current === undefined;
  }

  private async put(key: string, value: Buffer): Promise<void> {
    const put = this.lease ? this.lease.put(key) : this.opts.client.put(key);
    await put.value(value).exec();
  }

  /** Completion counts only here, once the key has left inFlight: awaitInitialKeys() relies on it. */
  private settle(key: string, done: boolean): void {
    this.inFlight.delete(key);
    if (done && this.awaitingInitial?.delete(key)) this.maybeWriteCanary();
    this.pump();
    if (this.queueSize === 0) this.idleWaiters.splice(0).forEach((resolve) => resolve());
  }

  private awaitInitialKeys(): void {
    for (const key of this.untouchedSinceStart) this.enqueue(key, { type: 'delete' });
    this.untouchedSinceStart.clear();
    this.awaitingInitial = new Set([...this.pending.keys(), ...this.inFlight]);
    this.maybeWriteCanary();
  }

  private maybeWriteCanary(): void {
    if (this.canaryWritten.isOpen || !this.awaitingInitial || this.awaitingInitial.size > 0) return;
    const canaryKey = this.opts.canaryKey;
    if (!canaryKey) return this.canaryWritten.release();
    this.retry(canaryKey, () => this.put(canaryKey, Buffer.from(encodeTimestamp()))).then(
      () => this.canaryWritten.release(),
      () => undefined, // aborted by stop()
    );
  }

  private retry<T>(key: string, attempt: () => Promise<T>): Promise<T> {
    const { backoff, logger, endpoints } = this.opts;
    return retryEtcdOp({ signal: this.abort.signal, counters: this.counters, backoff, logger, endpoints }, { key }, attempt);
  }

  /** Keys under a lost lease are gone from etcd: forget them and write everything again. */
  private newLease(): Lease {
    const lease = this.opts.client.lease(this.opts.leaseTTLSeconds!);
    lease.on('lost', (err) => {
      if (this.abort.signal.aborted) return;
      this.opts.logger?.warn(
        { prefix: this.opts.prefix, err: err.message },
        'etcd lease lost; rewriting every key',
      );
      this.lease = this.newLease();
      this.inEtcd.clear();
      for (const [key, value] of this.desired) this.enqueue(key, { type: 'upsert', value });
      if (this.canaryWritten.isOpen && this.opts.canaryKey) {
        this.canaryWritten.reset();
        this.awaitingInitial = new Set(this.desired.keys());
        this.maybeWriteCanary();
      }
    });
    return lease;
  }
}
