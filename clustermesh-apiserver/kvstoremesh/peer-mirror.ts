/**
 * One peer mirrored into the local etcd, after Cilium's kvstoremesh remote cluster: connect to the
 * peer's etcd with backoff, read and check its cluster config, republish it locally with
 * `"cached": true`, then reflect services, nodes, identities and ipcache under `cilium/cache/…`
 * (lib/kvstore/state-kinds.ts), every record through the agent's own import validation
 * (lib/kvstore/validate.ts). Identities point at no address and stream straight into the cache.
 * Services, nodes and ipcache entries must also pass address ownership, a decision over every
 * peer at once (kvstoremesh.ts): they are held here, handed to it by `records()` once the three
 * initial listings are in, and what it admits is written by `write()`. Each prefix's sync canary
 * is written once its initial listing is in the cache (for the held kinds: has gone through a
 * decision).
 *
 * The cache outlives connections the way an agent's records do (agent/remote/remote-cluster.ts):
 * an outage keeps it, for at most the peer cache TTL, after which it is dropped so the agents
 * reading it let the peer go as they would in direct mode. A removed peer's cache, canaries and
 * cached config are deleted at once.
 */
import type { Etcd3 } from 'etcd3';
import type { Counter } from 'prom-client';
import { encodeClusterConfig, encodeClusterService, type Decoded } from '../../lib/kvstore/codecs.js';
import { classifyEtcdError } from '../../lib/kvstore/etcd.js';
import { clusterConfigKey, serviceKey, syncedClusterPrefix } from '../../lib/kvstore/keys.js';
import { Latch } from '../../lib/kvstore/latch.js';
import type { PeerRecords } from '../../lib/kvstore/ownership.js';
import { createStopController, retryUntilAborted, type BackoffOptions } from '../../lib/kvstore/retry.js';
import {
  STATE_KINDS,
  STATE_KIND_SPECS,
  cacheKeyOf,
  stateSource,
  type StateKind,
} from '../../lib/kvstore/state-kinds.js';
import { SyncStore } from '../../lib/kvstore/sync-store.js';
import type { ClusterConfig, ClusterService, IPCacheEntry, NodeRecord } from '../../lib/kvstore/types.js';
import { rejectionClass, validateRemoteRecord } from '../../lib/kvstore/validate.js';
import { WatchStore } from '../../lib/kvstore/watch-store.js';
import type { Logger } from '../../lib/log.js';
import type { PeerSyncState } from '../../lib/pass-pacing.js';
import type { PeerConfig } from '../../lib/remotes/peer-config.js';
import { connectPeer, disconnectPeer, type PeerConnection } from '../../lib/remotes/peer-connect.js';
import { PeerLink } from '../../lib/remotes/peer-link.js';

export interface PeerMirrorMetrics {
  /** records of a peer refused by the import validation or address ownership, by cluster, kind and reason */
  rejected: Counter<'cluster' | 'kind' | 'reason'>;
  /** listings of a peer after the first, by cluster and kind */
  relists: Counter<'cluster' | 'kind'>;
}

/** The kinds that point at addresses: held for the ownership decision, never streamed. */
const HELD_KINDS = ['services', 'nodes', 'ipcache'] as const;
type HeldKind = (typeof HELD_KINDS)[number];
type AddressRecord = ClusterService | NodeRecord | IPCacheEntry;

/** A peer's address-bearing records as the ownership decision takes them, and as it admits them. */
export interface MirrorRecords extends PeerRecords {
  /** the session that read them: what is admitted is written only into that session's cache */
  readonly session: object;
}

export interface PeerMirrorOptions {
  config: PeerConfig;
  /** the local etcd, as the admin user */
  local: Etcd3;
  localEndpoints: string[];
  /** Why `id` cannot be this peer's cluster ID (the local cluster's or another peer's), or null. */
  idConflict: (id: number) => string | null;
  /** How long a disconnected peer's cache is kept. */
  cacheTtlMs: number;
  /** The records `records()` hands over changed (or the peer's cache was dropped): decide again. */
  onRecordsChange: () => void;
  log: Logger;
  metrics: PeerMirrorMetrics;
  backoff?: BackoffOptions;
  dialTimeoutMs?: number;
}

export interface PeerMirrorStatus {
  name: string;
  id: number | null;
  connected: boolean;
  /** every kind's initial listing is in the cache and its canary written */
  synced: boolean;
  /** records of the peer in the cache, by kind */
  records: Record<StateKind, number>;
  /** refused by the import validation (the kvstoremesh adds the ownership refusals) */
  rejected: number;
  /** one line */
  lastError: string | null;
}

interface Reflector<T> {
  kind: StateKind;
  watch: WatchStore<T>;
  cache: SyncStore;
}

/** One held kind of a session. */
interface Holder extends Reflector<AddressRecord> {
  kind: HeldKind;
  /** its initial listing is in */
  listed: boolean;
  /** the records as last handed over; null once they changed */
  records: AddressRecord[] | null;
  /** cache key → the record written there (compared by identity: a decided record is the held object, or one rebuilt service) */
  written: Map<string, AddressRecord>;
}

interface Session {
  readonly abort: AbortController;
  client: Etcd3 | null;
  link: PeerLink | null;
  /** identities, straight into the cache */
  streamed: Reflector<Buffer>[];
  held: Holder[];
  /** what records() returned last for this session; null once anything changed */
  view: MirrorRecords | null;
  done: Promise<void>;
}

const firstLine = (text: string): string => text.split('\n')[0] ?? text;

export class PeerMirror {
  readonly name: string;
  private config: PeerConfig;
  private id: number | null = null;
  private connected = false;
  private session: Session | null = null;
  private ttlTimer: NodeJS.Timeout | null = null;
  private rejected = 0;
  /** open once every kind of the current session is in the cache with its canary written */
  private readonly synced = new Latch();
  /**
   * The last complete records handed over: a new session's stand in until its own listings are in,
   * so that a reconnect never takes the peer's claims out of the decision.
   */
  private lastComplete: MirrorRecords | null = null;
  /** a held record → its state key (a rebuilt service is keyed by its name) */
  private readonly stateKeys = new WeakMap<AddressRecord, string>();
  private lastError: string | null = null;
  /** records in the cache by kind, as the replaced sessions that had synced each kind left it (see status()) */
  private readonly cachedCounts = Object.fromEntries(STATE_KINDS.map((kind) => [kind, 0])) as Record<StateKind, number>;
  private readonly log: Logger;

  constructor(private readonly opts: PeerMirrorOptions) {
    this.name = opts.config.name;
    this.config = opts.config;
    this.log = opts.log.child({ remoteCluster: this.name });
  }

  /** The cluster ID this peer holds (read from its config, not refused), or null. */
  get clusterId(): number | null {
    return this.id;
  }

  start(): void {
    this.session ??= this.openSession();
    this.armTtl();
  }

  /** New endpoints or certificates: a new session; the cache stays and is resynced in place. */
  async update(config: PeerConfig): Promise<void> {
    this.config = config;
    this.log.info('peer config changed; reconnecting');
    await this.replaceSession();
  }

  /** Stops mirroring and leaves the cache as it is (a restart resyncs it without a gap). */
  async close(): Promise<void> {
    this.disarmTtl();
    this.synced.reset();
    const session = this.session;
    this.session = null;
    if (session) await this.closeSession(session);
  }

  /** The peer left the mesh: stop, then delete its cache, canaries and cached config. */
  async remove(signal: AbortSignal): Promise<void> {
    await this.close();
    await this.deleteCache(signal, { withConfig: true });
    this.log.info(`peer ${this.name} removed; its cache is deleted`);
  }

  status(): PeerMirrorStatus {
    // A kind the current session has not synced yet still has the previous session's records in
    // the cache (a new session resyncs in place): they count until the new sync is in.
    const records = { ...this.cachedCounts, ...(this.session && syncedCounts(this.session)) };
    return {
      name: this.name,
      id: this.id,
      connected: this.connected,
      synced: this.synced.isOpen,
      records,
      rejected: this.rejected,
      lastError: this.lastError,
    };
  }

  /** Resolves once every kind of the current session is synced into the cache. */
  whenSynced(): Promise<void> {
    return this.synced.wait();
  }

  /** What pacing the decisions needs (lib/pass-pacing.ts): the held kinds' listings count as the services'. */
  syncState(): PeerSyncState {
    const listed =
      this.session?.held.length === HELD_KINDS.length && this.session.held.every((h) => h.listed);
    return { id: this.id, connected: this.connected, synced: { services: listed } };
  }

  /**
   * The peer's address-bearing records for the ownership decision: the current session's once
   * its three initial listings are in, else the last complete ones (a session being replaced),
   * else null (nothing to decide on yet). The same object while nothing changed.
   */
  records(): MirrorRecords | null {
    const session = this.session;
    if (!session || session.held.length < HELD_KINDS.length || !session.held.every((h) => h.listed))
      return this.lastComplete;
    if (!session.view) {
      const of = <T extends AddressRecord>(kind: HeldKind): T[] => {
        const holder = session.held.find((h) => h.kind === kind)!;
        holder.records ??= holder.watch.entries().map(([, record]) => record);
        return holder.records as T[];
      };
      session.view = {
        name: this.name,
        services: of<ClusterService>('services'),
        nodes: of<NodeRecord>('nodes'),
        ipcache: of<IPCacheEntry>('ipcache'),
        session,
      };
    }
    this.lastComplete = session.view;
    return session.view;
  }

  /**
   * Writes what the decision admitted of `records()`: new and changed records are upserted (the
   * SyncStore skips bytes etcd holds already), records no longer admitted are deleted, and each
   * held kind's canary follows its first decision. Records of a replaced session are not written.
   */
  write(admitted: MirrorRecords): void {
    const session = this.session;
    if (!session || admitted.session !== session) return;
    for (const holder of session.held) this.writeHeld(holder, admitted[holder.kind]);
  }

  private writeHeld(holder: Holder, records: readonly AddressRecord[]): void {
    const next = new Map<string, AddressRecord>();
    for (const record of records) {
      // Only a service is ever rebuilt (without its refused backends); its key is its name.
      const stateKey = this.stateKeys.get(record) ?? serviceKeyOf(record as ClusterService);
      const key = cacheKeyOf(holder.kind, this.name, stateKey);
      next.set(key, record);
      if (holder.written.get(key) === record) continue;
      const raw = holder.watch.get(stateKey) === record ? holder.watch.rawOf(stateKey) : undefined;
      holder.cache.upsert(key, raw ?? encodeClusterService(record as ClusterService));
    }
    for (const key of holder.written.keys()) if (!next.has(key)) holder.cache.delete(key);
    holder.written = next;
    holder.cache.markInitialSyncDone();
  }

  // ------------------------------------------------------------ sessions

  private openSession(): Session {
    this.synced.reset();
    const session: Session = {
      abort: createStopController(),
      client: null,
      link: null,
      streamed: [],
      held: [],
      view: null,
      done: Promise.resolve(),
    };
    session.done = this.runSession(session);
    return session;
  }

  private async replaceSession(): Promise<void> {
    const old = this.session;
    if (old) Object.assign(this.cachedCounts, syncedCounts(old));
    this.setConnected(false);
    this.session = this.openSession();
    if (old) await this.closeSession(old);
  }

  private async closeSession(session: Session): Promise<void> {
    await this.stopWriting(session);
    await this.disconnect(session);
  }

  /** Once this returns, nothing of `session` writes to the local etcd any more (only local waits). */
  private async stopWriting(session: Session): Promise<void> {
    session.abort.abort(new Error(`peer ${this.name} closed`));
    await session.done; // a connect in flight ends within the dial timeout; then nothing starts
    await Promise.all([...session.streamed, ...session.held].map((r) => r.cache.stop()));
  }

  private disconnect(session: Session): Promise<void> {
    return disconnectPeer(session.client, session.link, [...session.streamed, ...session.held].map((r) => r.watch));
  }

  private async runSession(session: Session): Promise<void> {
    try {
      const connection = await retryUntilAborted(
        () => this.connectOnce(session),
        session.abort.signal,
        (err) => this.recordFailure(err.message),
        this.opts.backoff,
      );
      const { client, config } = connection;
      await retryUntilAborted(
        () => this.publishConfig(config),
        session.abort.signal,
        (err) => this.recordFailure(`writing the cached cluster config of ${this.name}: ${err.message}`),
        this.opts.backoff,
      );
      if (session.abort.signal.aborted) return;
      this.setConnected(true);
      this.watchLink(session, connection);
      this.startReflectors(session, client, config);
    } catch {
      // aborted: the session was replaced or closed
    }
  }

  private connectOnce(session: Session): Promise<PeerConnection> {
    return connectPeer(this.config, {
      dialTimeoutMs: this.opts.dialTimeoutMs,
      accept: (config, client) => {
        if (config.capabilities.cached)
          throw new Error(
            `${clusterConfigKey(this.name)} at ${this.config.endpoints.join(', ')} says "cached": it is another cluster's cache, not ${this.name}'s own etcd (point the peer entry at ${this.name}'s clustermesh-apiserver)`,
          );
        if (session.abort.signal.aborted) throw new Error('aborted');
        this.claimId(config.id);
        session.client = client;
      },
    });
  }

  /** Synchronous from check to claim, so two peers can never both take one ID. */
  private claimId(id: number): void {
    const conflict = this.opts.idConflict(id);
    if (conflict) throw new Error(`refused: ${conflict}`);
    this.id = id;
  }

  /** The peer's config as the local agents must read it: same ID, cached, canaries always written. */
  private async publishConfig(config: ClusterConfig): Promise<void> {
    const value = encodeClusterConfig({
      id: config.id,
      capabilities: {
        syncedCanaries: true,
        maxConnectedClusters: config.capabilities.maxConnectedClusters,
        cached: true,
      },
    });
    const key = clusterConfigKey(this.name);
    if ((await this.opts.local.get(key).string()) !== value)
      await this.opts.local.put(key).value(value).exec();
  }

  /** The link's pulse (lib/remotes/peer-link.ts); any change of the peer's config means a new session. */
  private watchLink(session: Session, connection: PeerConnection): void {
    const current = () => this.session === session && !session.abort.signal.aborted;
    session.link = new PeerLink({
      client: connection.client,
      peer: this.name,
      config: connection.config,
      revision: connection.revision,
      backoff: this.opts.backoff,
      handlers: {
        up: () => current() && this.setConnected(true),
        lost: (err) => current() && this.linkLost(err),
        changed: () => current() && void this.replaceSession(),
        invalid: (reason) =>
          current() && this.recordFailure(`invalid cluster config of ${this.name}: ${reason}`),
      },
    });
    session.link.start();
  }

  private linkLost(err: Error): void {
    if (!this.connected) return;
    this.recordFailure(classifyEtcdError(err, this.config.endpoints).message);
    this.setConnected(false);
  }

  /**
   * One reflector per kind: the peer's prefix, validated, into a SyncStore on the cache prefix
   * (identities at once, the held kinds through the ownership decision). A SyncStore per session
   * lists what the cache holds first, so a reconnect (or a restart of this process) rewrites only
   * what changed and deletes only what the peer no longer has or no longer may publish.
   */
  private startReflectors(session: Session, client: Etcd3, config: ClusterConfig): void {
    const clusterID = config.id;
    const current = () => this.session === session && !session.abort.signal.aborted;
    for (const kind of STATE_KINDS) {
      const spec = STATE_KIND_SPECS[kind];
      const cache = new SyncStore({
        client: this.opts.local,
        prefix: spec.cachePrefix(this.name),
        canaryKey: stateSource(kind, this.name, true).canaryKey,
        backoff: this.opts.backoff,
        logger: this.log.child({ cache: kind }),
        endpoints: this.opts.localEndpoints,
      });
      const watchOptions = {
        client,
        prefix: spec.prefix(this.name),
        canaryKey: config.capabilities.syncedCanaries
          ? stateSource(kind, this.name, false).canaryKey
          : undefined,
        onReject: (key: string, reason: string) => this.reject(kind, key, reason),
        onRelist: () => this.opts.metrics.relists.inc({ cluster: this.name, kind }),
        backoff: this.opts.backoff,
        logger: this.log.child({ kind }),
        endpoints: this.config.endpoints,
      };
      const validate = (key: string, bytes: Buffer) =>
        validateRemoteRecord(spec.record, key, bytes, { cluster: this.name, clusterID });
      if (kind === 'identities') {
        const watch = new WatchStore<Buffer>({
          ...watchOptions,
          // The cache holds the peer's bytes as they were validated: agents validate them again.
          decode: (key, bytes): Decoded<Buffer> => {
            const decoded = validate(key, bytes);
            return decoded.ok ? { ok: true, value: bytes } : decoded;
          },
          onEvent: (event) => {
            const cacheKey = cacheKeyOf(kind, this.name, event.key);
            if (event.type === 'upsert') cache.upsert(cacheKey, event.value);
            else cache.delete(cacheKey);
          },
          onSynced: () => cache.markInitialSyncDone(),
        });
        session.streamed.push({ kind, watch, cache });
      } else {
        const holder: Holder = {
          kind,
          cache,
          listed: false,
          records: null,
          written: new Map(),
          watch: new WatchStore<AddressRecord>({
            ...watchOptions,
            decode: (key, bytes) => {
              const decoded = validate(key, bytes) as Decoded<AddressRecord>;
              if (decoded.ok) this.stateKeys.set(decoded.value, key);
              return decoded;
            },
            onEvent: () => {
              if (!current()) return;
              holder.records = null;
              session.view = null;
              this.opts.onRecordsChange();
            },
            onSynced: () => {
              if (!current()) return;
              holder.listed = true;
              session.view = null;
              this.opts.onRecordsChange();
            },
          }),
        };
        session.held.push(holder);
      }
    }
    for (const { watch, cache } of [...session.streamed, ...session.held]) {
      void cache.start().catch(() => undefined); // rejects only when stopped
      watch.start();
    }
    void Promise.all([...session.streamed, ...session.held].map((r) => r.cache.whenSynced())).then(
      () => this.session === session && this.synced.release(),
    );
  }

  // ------------------------------------------------------------ cache TTL

  private setConnected(connected: boolean): void {
    if (connected === this.connected) return;
    this.connected = connected;
    this.log.info(`link ${connected ? 'connected' : 'disconnected'}`);
    if (connected) this.disarmTtl();
    else this.armTtl();
  }

  private armTtl(): void {
    if (this.connected || this.ttlTimer) return;
    this.ttlTimer = setTimeout(() => void this.expire(), this.opts.cacheTtlMs);
    this.ttlTimer.unref();
  }

  private disarmTtl(): void {
    if (this.ttlTimer) clearTimeout(this.ttlTimer);
    this.ttlTimer = null;
  }

  /** Disconnected for the whole TTL: drop the cache; a new session refills it once the peer is back. */
  private async expire(): Promise<void> {
    this.ttlTimer = null;
    const old = this.session;
    if (!old || this.connected) return;
    this.log.warn(`peer ${this.name} unreachable for ${this.opts.cacheTtlMs} ms; dropping its cache`);
    this.session = null;
    this.lastComplete = null;
    this.opts.onRecordsChange(); // its claims leave the decision with its cache
    await this.stopWriting(old);
    await this.deleteCache(createStopController().signal, { withConfig: false });
    if (this.session === null) this.start();
    await this.disconnect(old);
  }

  private async deleteCache(signal: AbortSignal, { withConfig }: { withConfig: boolean }): Promise<void> {
    for (const kind of STATE_KINDS) this.cachedCounts[kind] = 0;
    await retryUntilAborted(
      () => deletePeerCache(this.opts.local, this.name, { withConfig }),
      signal,
      (err) => this.recordFailure(`deleting the cache of ${this.name}: ${err.message}`),
      this.opts.backoff,
    );
  }

  // ------------------------------------------------------------ status

  private reject(kind: StateKind, key: string, reason: string): void {
    this.rejected++;
    this.opts.metrics.rejected.inc({ cluster: this.name, kind, reason: rejectionClass(key, reason) });
    this.log.warn({ kind }, `rejected a record from ${this.name}: ${firstLine(reason)}`);
  }

  private recordFailure(message: string): void {
    this.lastError = firstLine(message);
    this.log.warn(this.lastError);
  }
}

const serviceKeyOf = (svc: ClusterService): string => serviceKey(svc.cluster, svc.namespace, svc.name);

/** The records a session has in the cache, for the kinds it has synced. */
function syncedCounts(session: Session): Partial<Record<StateKind, number>> {
  const counts: Partial<Record<StateKind, number>> = {};
  for (const { kind, watch, cache } of session.streamed) if (cache.synced) counts[kind] = watch.entries().length;
  for (const { kind, written, cache } of session.held) if (cache.synced) counts[kind] = written.size;
  return counts;
}

/** Deletes a peer's cache and canaries from the local etcd, and with `withConfig` its cached config. */
export async function deletePeerCache(
  local: Etcd3,
  peer: string,
  { withConfig }: { withConfig: boolean },
): Promise<void> {
  const prefixes = [
    ...STATE_KINDS.map((kind) => STATE_KIND_SPECS[kind].cachePrefix(peer)),
    syncedClusterPrefix(peer),
  ];
  for (const prefix of prefixes) await local.delete().prefix(prefix).exec();
  if (withConfig) await local.delete().key(clusterConfigKey(peer)).exec();
}
