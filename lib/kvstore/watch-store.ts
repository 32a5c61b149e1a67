/**
 * WatchStore: the read side of one kvstore prefix, after Cilium's WatchStore.
 *
 * It lists the prefix, then watches from the listed revision. When the watch breaks (etcd down,
 * connection cut, revision compacted) every known key becomes stale and the prefix is listed
 * again: keys whose bytes did not change emit nothing, changed ones emit an upsert, and only keys
 * that did not come back emit a delete. So an etcd restart never makes a remote service flap.
 *
 * Every value goes through `decode` (the validation hook); a rejected value is reported to
 * `onReject` and never emitted. A key whose new value is rejected is deleted downstream: the
 * remote no longer vouches for the old value.
 */
import { Etcd3, type IKeyValue, type Watcher } from 'etcd3';
import type { Logger } from 'pino';
import type { Decoded } from './codecs.js';
import { classifyEtcdError } from './etcd.js';
import { Latch } from './latch.js';
import { createStopController, retryEtcdOp, type BackoffOptions } from './retry.js';

export type WatchEvent<T> = { type: 'upsert'; key: string; value: T } | { type: 'delete'; key: string };

export interface WatchStoreOptions<T> {
  client: Etcd3;
  prefix: string;
  /** Validation hook: bytes → value or a reason to reject. */
  decode: (key: string, bytes: Buffer) => Decoded<T>;
  onEvent: (event: WatchEvent<T>) => void;
  onReject?: (key: string, reason: string) => void;
  /** Called once, when the store first becomes synced. */
  onSynced?: () => void;
  /** When set, `synced` also waits for this key (the writer's sync canary) to exist. */
  canaryKey?: string;
  backoff?: BackoffOptions;
  logger?: Logger;
  /** Endpoints, only to word error messages. */
  endpoints?: string[];
}

export interface WatchStoreCounters {
  upserts: number;
  deletes: number;
  rejected: number;
  /** Lists after the first one (each follows a broken watch). */
  relists: number;
  /** Failed list/watch attempts. */
  errors: number;
}

interface Known<T> {
  /** a copy: the bytes the watch or list response handed us are a slice that pins the whole response */
  raw: Buffer;
  /** undefined when the current bytes were rejected. */
  value: T | undefined;
}

export class WatchStore<T> {
  readonly counters: WatchStoreCounters = { upserts: 0, deletes: 0, rejected: 0, relists: 0, errors: 0 };
  private readonly known = new Map<string, Known<T>>();
  private readonly abort = createStopController();
  private listed = false;
  private canarySeen: boolean;
  private readonly syncedLatch = new Latch();
  private running: Promise<void> | null = null;
  private readonly watchers = new Set<Watcher>();
  private wakeWatchLoop: (() => void) | null = null;

  constructor(private readonly opts: WatchStoreOptions<T>) {
    this.canarySeen = opts.canaryKey === undefined;
  }

  start(): void {
    this.running ??= this.run();
  }

  get synced(): boolean {
    return this.syncedLatch.isOpen;
  }

  whenSynced(): Promise<void> {
    return this.syncedLatch.wait();
  }

  /** The current valid value of a key. */
  get(key: string): T | undefined {
    return this.known.get(key)?.value;
  }

  /** Every key with a valid value. */
  entries(): Array<[string, T]> {
    return [...this.known].flatMap(([key, k]) =>
      k.value === undefined ? [] : [[key, k.value] as [string, T]],
    );
  }

  async stop(): Promise<void> {
    this.abort.abort(new Error('WatchStore stopped'));
    this.wakeWatchLoop?.(); // the loop cancels its watchers and returns
    await this.running;
  }

  private async run(): Promise<void> {
    while (!this.abort.signal.aborted) {
      try {
        const revision = await this.retry('list', () => this.list());
        await this.watchUntilBroken(revision);
      } catch (err) {
        if (this.abort.signal.aborted) return;
        this.counters.errors++;
        this.opts.logger?.warn(
          { prefix: this.opts.prefix, err: (err as Error).message },
          'watch failed; relisting',
        );
      }
    }
  }

  /** Lists the prefix (and the canary), reconciles, returns the revision of the listing. */
  private async list(): Promise<string> {
    const response = await this.opts.client.getAll().prefix(this.opts.prefix).exec();
    const revision = response.header.revision;
    if (!this.canarySeen && this.opts.canaryKey) {
      const canary = await this.opts.client.get(this.opts.canaryKey).exec();
      this.canarySeen = canary.kvs.length > 0;
    }
    if (this.listed) this.counters.relists++;
    this.reconcile(response.kvs);
    this.listed = true;
    this.checkSynced();
    return revision;
  }

  /** Applies a full listing: keys not listed are the only deletes. */
  private reconcile(kvs: IKeyValue[]): void {
    const stale = new Set(this.known.keys());
    for (const kv of kvs) {
      const key = kv.key.toString();
      stale.delete(key);
      this.applyPut(key, kv.value);
    }
    for (const key of stale) this.applyDelete(key);
  }

  private applyPut(key: string, raw: Buffer): void {
    const previous = this.known.get(key);
    if (previous && previous.raw.equals(raw)) return;
    const decoded = this.opts.decode(key, raw);
    const kept = Buffer.from(raw);
    if (!decoded.ok) {
      this.counters.rejected++;
      this.opts.onReject?.(key, decoded.reason);
      this.known.set(key, { raw: kept, value: undefined });
      if (previous?.value !== undefined) this.emit({ type: 'delete', key });
      return;
    }
    this.known.set(key, { raw: kept, value: decoded.value });
    this.emit({ type: 'upsert', key, value: decoded.value });
  }

  private applyDelete(key: string): void {
    const previous = this.known.get(key);
    if (!previous) return;
    this.known.delete(key);
    if (previous.value !== undefined) this.emit({ type: 'delete', key });
  }

  private emit(event: WatchEvent<T>): void {
    if (event.type === 'upsert') this.counters.upserts++;
    else this.counters.deletes++;
    this.opts.onEvent(event);
  }

  /** Watches the prefix (and the canary while unseen) from `revision`; returns when the watch breaks. */
  private async watchUntilBroken(revision: string): Promise<void> {
    const next = String(BigInt(revision) + 1n);
    let wake!: () => void;
    const broken = new Promise<void>((resolve) => (wake = resolve));
    this.wakeWatchLoop = wake;
    let reported = false;
    const onBroken = (why: string) => (err?: Error) => {
      if (!this.abort.signal.aborted && !reported) {
        reported = true;
        this.counters.errors++;
        const message = err ? classifyEtcdError(err, this.opts.endpoints ?? []).message : why;
        this.opts.logger?.warn({ prefix: this.opts.prefix }, `watch ${why}: ${message}`);
      }
      wake();
    };
    const watch = (build: (w: ReturnType<Etcd3['watch']>) => ReturnType<Etcd3['watch']>): Watcher => {
      const watcher = build(this.opts.client.watch()).startRevision(next).watcher();
      watcher.on('disconnected', onBroken('disconnected'));
      watcher.on('error', onBroken('failed'));
      watcher.on('end', onBroken('ended'));
      this.watchers.add(watcher);
      return watcher;
    };
    const main = watch((w) => w.prefix(this.opts.prefix));
    main.on('put', (kv) => this.applyPut(kv.key.toString(), kv.value));
    main.on('delete', (kv) => this.applyDelete(kv.key.toString()));
    if (!this.canarySeen && this.opts.canaryKey) {
      const canary = watch((w) => w.key(this.opts.canaryKey!));
      canary.on('put', () => {
        this.canarySeen = true;
        this.checkSynced();
      });
    }
    if (this.abort.signal.aborted) wake();
    await broken;
    await this.cancelWatchers();
  }

  private async cancelWatchers(): Promise<void> {
    const watchers = [...this.watchers];
    this.watchers.clear();
    // Cancelling detaches them from the client, which otherwise resumes them on its own.
    await Promise.all(watchers.map((w) => w.cancel().catch(() => undefined)));
  }

  private checkSynced(): void {
    if (this.syncedLatch.isOpen || !this.listed || !this.canarySeen) return;
    // waiters resume later (promise jobs), so onSynced still runs before them
    this.syncedLatch.release();
    this.opts.onSynced?.();
  }

  private retry<R>(what: string, attempt: () => Promise<R>): Promise<R> {
    const { prefix, backoff, logger, endpoints } = this.opts;
    return retryEtcdOp({ signal: this.abort.signal, counters: this.counters, backoff, logger, endpoints }, { prefix, what }, attempt);
  }
}
