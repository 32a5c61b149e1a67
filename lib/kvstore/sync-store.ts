/**
 * SyncStore: the write side of one kvstore prefix, after Cilium's SyncStore.
 *
 * - upsert/delete are queued per key; a newer op for a key replaces the pending one (coalescing).
 * - What is queued when the store flushes (a microtask after the first op: a burst of ops from one
 *   event-loop turn flushes together, a lone change at once) goes out in etcd transactions of many
 *   ops, bounded in count (etcd's --max-txn-ops, 128 by default) and in bytes (under etcd's 1.5 MiB
 *   request limit). One transaction costs etcd one proposal and one fsync, as one put does.
 * - start() reads the prefix first, so a write whose bytes equal what is in etcd is skipped: a
 *   restarted writer does not rewrite unchanged keys.
 * - After markInitialSyncDone(), keys listed at start that the writer did not upsert again are
 *   deleted, and once every key queued up to that moment is written the canary is put.
 * - Every transaction is retried with backoff until it succeeds or the store stops; a retry leaves
 *   out the keys a newer op superseded meanwhile.
 * - With leaseTTLSeconds the keys are ephemeral; if the lease is lost they are all written again.
 */
import type { Etcd3, IRequestOp, Lease } from 'etcd3';
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
  /** Concurrent transactions (default 8). */
  maxInFlight?: number;
  /** Ops per transaction at most (default 128: etcd's default --max-txn-ops). */
  maxOpsPerTxn?: number;
  /** Key and value bytes per transaction at most (default 1 MiB: etcd refuses requests over 1.5 MiB). */
  maxTxnBytes?: number;
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

interface KeyedOp {
  key: string;
  op: Op;
}

export const DEFAULT_MAX_OPS_PER_TXN = 128;
export const DEFAULT_MAX_TXN_BYTES = 1024 * 1024;
/** What etcd's request adds per op beyond its key and value bytes (a generous bound). */
const PER_OP_OVERHEAD_BYTES = 32;

export class SyncStore {
  readonly counters: SyncStoreCounters = { writes: 0, deletes: 0, skipped: 0, errors: 0 };
  private readonly pending = new Map<string, Op>();
  /** keys of the transactions being written */
  private readonly inFlight = new Set<string>();
  private txnsInFlight = 0;
  private flushQueued = false;
  /** What etcd holds under the prefix, as far as this writer knows. */
  private readonly inEtcd = new Map<string, Buffer>();
  /**
   * Keys of a transaction that failed: etcd may have applied it all the same (the answer was
   * lost), so what it holds is unknown and no op of theirs is skipped until one is written.
   */
  private readonly uncertain = new Set<string>();
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
  private readonly maxOpsPerTxn: number;
  private readonly maxTxnBytes: number;
  private lease: Lease | null = null;
  private readonly idleWaiters: Array<() => void> = [];
  /** open once the canary is written */
  private readonly canaryWritten = new Latch();

  constructor(private readonly opts: SyncStoreOptions) {
    if (!opts.prefix.endsWith('/')) throw new Error(`SyncStore prefix "${opts.prefix}" must end with "/"`);
    this.maxInFlight = opts.maxInFlight ?? 8;
    this.maxOpsPerTxn = opts.maxOpsPerTxn ?? DEFAULT_MAX_OPS_PER_TXN;
    this.maxTxnBytes = opts.maxTxnBytes ?? DEFAULT_MAX_TXN_BYTES;
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
    this.flushSoon();
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

  /** Nothing queued nor being written (what queueSize === 0 says, without counting). */
  private get idle(): boolean {
    return this.pending.size === 0 && this.inFlight.size === 0;
  }

  /** Resolves when nothing is queued or being written. */
  drain(): Promise<void> {
    return this.idle
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
    this.flushSoon();
  }

  /** A microtask later: the ops of the current event-loop turn go out together, a lone one at once. */
  private flushSoon(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      this.flush();
    });
  }

  /** Starts transactions of what is queued, while transaction slots are free. */
  private flush(): void {
    if (!this.started || this.abort.signal.aborted) return;
    while (this.txnsInFlight < this.maxInFlight) {
      const { batch, unchanged } = this.takeBatch();
      for (const key of unchanged) this.settle(key, true);
      if (batch.length === 0) {
        if (unchanged.length === 0) return;
        continue;
      }
      this.txnsInFlight++;
      void this.commit(batch).then((done) => {
        this.txnsInFlight--;
        for (const { key } of batch) this.settle(key, done.has(key));
        this.flush();
      });
    }
  }

  /**
   * Moves queued ops into one transaction's worth (keys in flight wait for their transaction to
   * end); ops etcd already matches are taken out as `unchanged`, writing nothing.
   */
  private takeBatch(): { batch: KeyedOp[]; unchanged: string[] } {
    const batch: KeyedOp[] = [];
    const unchanged: string[] = [];
    let bytes = 0;
    for (const [key, op] of this.pending) {
      if (batch.length >= this.maxOpsPerTxn) break;
      if (this.inFlight.has(key)) continue;
      const opBytes = Buffer.byteLength(key) + (op.type === 'upsert' ? op.value.length : 0) + PER_OP_OVERHEAD_BYTES;
      if (batch.length > 0 && bytes + opBytes > this.maxTxnBytes) break;
      this.pending.delete(key);
      this.inFlight.add(key);
      if (this.isUnchanged(key, op)) {
        this.counters.skipped++;
        unchanged.push(key);
        continue;
      }
      bytes += opBytes;
      batch.push({ key, op });
    }
    return { batch, unchanged };
  }

  /** The keys whose op etcd now holds; the others were superseded by a newer op or the store stopped. */
  private async commit(batch: KeyedOp[]): Promise<Set<string>> {
    let written: KeyedOp[];
    try {
      written = await this.retry(batch[0].key, async () => {
        // A newer op for a key supersedes its op here: a retry does not write a stale value.
        const current = batch.filter(({ key }) => !this.pending.has(key));
        if (current.length === 0) return current;
        try {
          await this.txn(current);
        } catch (err) {
          for (const { key } of current) this.uncertain.add(key);
          throw err;
        }
        return current;
      }, batch.length);
    } catch {
      return new Set(); // aborted by stop()
    }
    for (const { key, op } of written) {
      this.uncertain.delete(key);
      if (op.type === 'upsert') {
        this.inEtcd.set(key, op.value);
        this.counters.writes++;
      } else {
        this.inEtcd.delete(key);
        this.counters.deletes++;
      }
    }
    return new Set(written.map(({ key }) => key));
  }

  private async txn(ops: KeyedOp[]): Promise<void> {
    const lease = this.lease ? await this.lease.grant() : undefined;
    const success = ops.map(({ key, op }): IRequestOp =>
      op.type === 'upsert'
        ? { request_put: { key: Buffer.from(key), value: op.value, lease } }
        : { request_delete_range: { key: Buffer.from(key) } },
    );
    await this.opts.client.kv.txn({ compare: [], success, failure: [] });
  }

  private isUnchanged(key: string, op: Op): boolean {
    if (this.uncertain.has(key)) return false;
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
    if (this.pending.has(key)) this.flushSoon();
    if (this.idle) this.idleWaiters.splice(0).forEach((resolve) => resolve());
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

  /** `ops`: how many ops the retried request carries (a transaction is logged by its first key). */
  private retry<T>(key: string, attempt: () => Promise<T>, ops = 1): Promise<T> {
    const { backoff, logger, endpoints } = this.opts;
    const fields = ops > 1 ? { key, ops } : { key };
    return retryEtcdOp({ signal: this.abort.signal, counters: this.counters, backoff, logger, endpoints }, fields, attempt);
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
