/**
 * WatchStore: the read side of one kvstore prefix, after Cilium's WatchStore.
 *
 * It lists the prefix (lib/kvstore/listing.ts: in pages, at one revision, with the writer's
 * sync canary read at that same revision), then watches from the listed revision. When the watch
 * breaks (etcd down, connection cut, revision compacted) the prefix is listed again, after the
 * per-store backoff of lib/kvstore/relist-limiter.ts: keys whose bytes did not change emit
 * nothing, changed ones emit an upsert, and keys that did not come back are deleted only if the
 * canary is in that listing. A writer whose etcd restarted empty (the chart's etcd is an
 * emptyDir) repopulates before it writes its canary: until then its missing keys are held, not
 * deleted; the canary's return makes the store list once more and delete what is still gone. So
 * neither an etcd restart nor a peer starting over from nothing makes a remote service flap.
 *
 * Every value goes through `decode` (the validation hook); a rejected value is reported to
 * `onReject` and never emitted. A key whose new value is rejected is deleted downstream: the
 * remote no longer vouches for the old value.
 */
import { Etcd3, type Watcher } from 'etcd3';
import type { Logger } from 'pino';
import type { Decoded } from './codecs.js';
import { classifyEtcdError } from './etcd.js';
import { Latch } from './latch.js';
import { planListing, readListing, type Listing } from './listing.js';
import { relistLimiter, type RelistLimiter } from './relist-limiter.js';
import { createStopController, type BackoffOptions } from './retry.js';

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
  /** Called for every listing after the first (a broken watch, compacted history, the canary's return). */
  onRelist?: () => void;
  /**
   * The writer's sync canary. When set, `synced` waits for a listing that contains it, and keys
   * missing from a listing are deleted only when the canary is in that listing.
   */
  canaryKey?: string;
  /** Steps of the relist backoff. */
  backoff?: BackoffOptions;
  /** Default: the process's `relistLimiter`. */
  limiter?: RelistLimiter;
  /** Keys per range request of a listing (default DEFAULT_LISTING_PAGE_SIZE). */
  pageSize?: number;
  logger?: Logger;
  /** Endpoints, only to word error messages. */
  endpoints?: string[];
}

export interface WatchStoreCounters {
  upserts: number;
  deletes: number;
  rejected: number;
  /** Listings after the first one (each follows a broken watch or the canary's return). */
  relists: number;
  /** Range requests of all listings. */
  pages: number;
  /** Keys missing from the latest listing but kept because its canary was absent. */
  held: number;
  /** Failed list/watch attempts. */
  errors: number;
}

/** Why a watch ended. */
type WatchEnd = 'broken' | 'canary' | 'stopped';

interface Known<T> {
  /** a copy: the bytes the watch or list response handed us are a slice that pins the whole response */
  raw: Buffer;
  /** undefined when the current bytes were rejected. */
  value: T | undefined;
}

export class WatchStore<T> {
  readonly counters: WatchStoreCounters = {
    upserts: 0,
    deletes: 0,
    rejected: 0,
    relists: 0,
    pages: 0,
    held: 0,
    errors: 0,
  };
  private readonly known = new Map<string, Known<T>>();
  private readonly abort = createStopController();
  private listed = false;
  private readonly syncedLatch = new Latch();
  private running: Promise<void> | null = null;
  private readonly watchers = new Set<Watcher>();
  private endWatch: ((why: WatchEnd) => void) | null = null;

  constructor(private readonly opts: WatchStoreOptions<T>) {}

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

  /** The bytes of a key's current valid value, as the writer put them (what a cache republishes). */
  rawOf(key: string): Buffer | undefined {
    const known = this.known.get(key);
    return known?.value === undefined ? undefined : known.raw;
  }

  /** Every key with a valid value. */
  entries(): Array<[string, T]> {
    return [...this.known].flatMap(([key, k]) =>
      k.value === undefined ? [] : [[key, k.value] as [string, T]],
    );
  }

  async stop(): Promise<void> {
    this.abort.abort(new Error('WatchStore stopped'));
    this.endWatch?.('stopped'); // the loop cancels its watchers and returns
    await this.running;
  }

  private async run(): Promise<void> {
    const { signal } = this.abort;
    const schedule = (this.opts.limiter ?? relistLimiter).schedule(this.opts.backoff);
    for (let first = true; !signal.aborted; first = false) {
      try {
        if (!first) await schedule.next(signal);
        const listing = await readListing(this.opts.client, {
          prefix: this.opts.prefix,
          canaryKey: this.opts.canaryKey,
          pageSize: this.opts.pageSize,
        });
        this.apply(listing);
        const end = await this.watchUntilEnd(listing, () => schedule.watching());
        if (end === 'canary')
          this.opts.logger?.info({ prefix: this.opts.prefix }, 'sync canary present again; relisting');
      } catch (err) {
        if (signal.aborted) return;
        this.counters.errors++;
        const failure = classifyEtcdError(err, this.opts.endpoints ?? []);
        this.opts.logger?.warn(
          { prefix: this.opts.prefix, kind: failure.kind, attempt: schedule.consecutive + 1 },
          `listing failed: ${failure.message}`,
        );
      }
    }
  }

  /** Applies a full listing: missing keys are deleted only when the listing is authoritative. */
  private apply(listing: Listing): void {
    if (this.listed) {
      this.counters.relists++;
      this.opts.onRelist?.();
    }
    this.counters.pages += listing.pages;
    const plan = planListing(this.known, listing.kvs, listing.canaryPresent);
    for (const key of plan.upserts) this.applyPut(key, listing.kvs.get(key)!);
    for (const key of plan.deletes) this.applyDelete(key);
    this.counters.held = plan.held.length;
    if (plan.held.length > 0)
      this.opts.logger?.info(
        { prefix: this.opts.prefix, held: plan.held.length },
        "keys missing from a listing without the writer's sync canary are kept until it is back",
      );
    this.listed = true;
    if (listing.canaryPresent && !this.syncedLatch.isOpen) {
      // waiters resume later (promise jobs), so onSynced still runs before them
      this.syncedLatch.release();
      this.opts.onSynced?.();
    }
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

  /**
   * Watches the prefix from the listing's revision, and the canary when the listing lacked it;
   * returns when the watch breaks, the canary appears (the store lists again: only a listing
   * with the canary may delete) or the store stops.
   */
  private async watchUntilEnd(listing: Listing, up: () => void): Promise<WatchEnd> {
    const next = String(BigInt(listing.revision) + 1n);
    let end!: (why: WatchEnd) => void;
    const ended = new Promise<WatchEnd>((resolve) => (end = resolve));
    this.endWatch = end;
    let reported = false;
    const onBroken = (why: string) => (err?: Error) => {
      if (!this.abort.signal.aborted && !reported) {
        reported = true;
        this.counters.errors++;
        // etcd cancels a watch without a reason when its start revision was compacted
        const message = !err
          ? why
          : /Watcher canceled/.test(err.message)
            ? `etcd canceled the watch from revision ${next} (its history was compacted past that revision, or read permission was revoked); listing again`
            : classifyEtcdError(err, this.opts.endpoints ?? []).message;
        this.opts.logger?.warn({ prefix: this.opts.prefix }, `watch ${why}: ${message}`);
      }
      end('broken');
    };
    const watch = (build: (w: ReturnType<Etcd3['watch']>) => ReturnType<Etcd3['watch']>): Watcher => {
      const watcher = build(this.opts.client.watch()).startRevision(next).watcher();
      watcher.on('disconnected', onBroken('disconnected'));
      watcher.on('error', (err: Error) => {
        // etcd canceled it (compacted start revision, revoked permission) and etcd3 has dropped
        // it: a cancel() now would wait forever for a reply that never comes.
        this.watchers.delete(watcher);
        onBroken('failed')(err);
      });
      watcher.on('end', onBroken('ended'));
      this.watchers.add(watcher);
      return watcher;
    };
    const main = watch((w) => w.prefix(this.opts.prefix));
    main.on('put', (kv) => this.applyPut(kv.key.toString(), kv.value));
    // a delete the writer made: authoritative even while missing keys are held
    main.on('delete', (kv) => this.applyDelete(kv.key.toString()));
    if (!listing.canaryPresent && this.opts.canaryKey) {
      const canary = watch((w) => w.key(this.opts.canaryKey!));
      canary.on('put', () => end('canary'));
    }
    up();
    if (this.abort.signal.aborted) end('stopped');
    const why = await ended;
    this.endWatch = null;
    await this.cancelWatchers();
    return why;
  }

  private async cancelWatchers(): Promise<void> {
    const watchers = [...this.watchers];
    this.watchers.clear();
    // Cancelling detaches them from the client, which otherwise resumes them on its own.
    await Promise.all(watchers.map((w) => w.cancel().catch(() => undefined)));
  }
}
