/**
 * One peer cluster, after Cilium's pkg/clustermesh remote cluster: connect to its etcd with
 * backoff, read and check its cluster config (ID 1..255, not taken by this cluster or another
 * peer), then watch services, nodes, identities and ipcache, each record through the import
 * validation. The records outlive connections: an etcd outage keeps them (the link is marked
 * disconnected), and a new session after a config change replaces them without a gap.
 */
import type { Etcd3 } from 'etcd3';
import type { Counter } from 'prom-client';
import type { IdentityLabels } from '../../lib/kvstore/codecs.js';
import { encodeIdentityLabels } from '../../lib/kvstore/codecs.js';
import { classifyEtcdError } from '../../lib/kvstore/etcd.js';
import { parseKeyOfKind } from '../../lib/kvstore/keys.js';
import { createStopController, retryUntilAborted, type BackoffOptions } from '../../lib/kvstore/retry.js';
import type { ClusterConfig, ClusterService, IPCacheEntry, NodeRecord } from '../../lib/kvstore/types.js';
import { rejectionClass, validateRemoteRecord } from '../../lib/kvstore/validate.js';
import { WatchStore, type WatchEvent } from '../../lib/kvstore/watch-store.js';
import type { Logger } from '../../lib/log.js';
import type { PeerConfig } from '../../lib/remotes/peer-config.js';
import { connectPeer, disconnectPeer, type PeerConnection } from '../../lib/remotes/peer-connect.js';
import { PeerLink } from '../../lib/remotes/peer-link.js';
import { STATE_KINDS, STATE_KIND_SPECS, stateSource, type StateKind } from '../../lib/kvstore/state-kinds.js';
import { RecordTable } from './records.js';

export type LinkState = { state: 'connected' } | { state: 'disconnected'; sinceMs: number };

export interface RemoteClusterView {
  name: string;
  id: number;
  link: LinkState;
  services: ClusterService[];
  nodes: NodeRecord[];
  /** numeric identity → sorted label string */
  identities: Map<number, string>;
  ipcache: IPCacheEntry[];
}

export interface RemoteClusterStatus {
  name: string;
  id: number | null;
  connected: boolean;
  ready: boolean;
  synced: Record<StateKind, boolean>;
  counts: Record<StateKind, number>;
  failures: number;
  /** ISO time */
  lastFailure: string | null;
  /** one line */
  lastError: string | null;
  rejected: number;
}

export interface RemoteClusterMetrics {
  rejected: Counter<'cluster' | 'kind' | 'reason'>;
  events: Counter<'cluster' | 'kind' | 'op'>;
  relists: Counter<'cluster' | 'kind'>;
}

export interface RemoteClusterOptions {
  config: PeerConfig;
  /** Why `id` cannot be this peer's cluster ID (it is the local cluster's or another peer's), or null. */
  idConflict: (id: number) => string | null;
  /** Something the view shows changed (records, link, ID). */
  onChange: () => void;
  log: Logger;
  metrics: RemoteClusterMetrics;
  backoff?: BackoffOptions;
  dialTimeoutMs?: number;
  now?: () => number;
}

interface Tables {
  services: RecordTable<ClusterService>;
  nodes: RecordTable<NodeRecord>;
  identities: RecordTable<IdentityLabels>;
  ipcache: RecordTable<IPCacheEntry>;
}

/** One connection attempt and what it opened; replaced as a whole on a config change. */
interface Session {
  readonly abort: AbortController;
  client: Etcd3 | null;
  link: PeerLink | null;
  stores: WatchStore<unknown>[];
  /** whether this session reads the peer from the local kvstoremesh cache */
  cached: boolean;
  done: Promise<void>;
}

const firstLine = (text: string): string => text.split('\n')[0] ?? text;

export class RemoteCluster {
  readonly name: string;
  private config: PeerConfig;
  private id: number | null = null;
  private link: LinkState;
  private session: Session | null = null;
  private readonly tables: Tables = {
    services: new RecordTable(),
    nodes: new RecordTable(),
    identities: new RecordTable(),
    ipcache: new RecordTable(),
  };
  private readonly synced: Record<StateKind, boolean> = {
    services: false,
    nodes: false,
    identities: false,
    ipcache: false,
  };
  private failures = 0;
  private lastFailureMs: number | null = null;
  private lastError: string | null = null;
  private rejected = 0;
  private cachedView: RemoteClusterView | null = null;
  private readonly log: Logger;
  private readonly now: () => number;

  constructor(private readonly opts: RemoteClusterOptions) {
    this.name = opts.config.name;
    this.config = opts.config;
    this.now = opts.now ?? Date.now;
    this.link = { state: 'disconnected', sinceMs: this.now() };
    this.log = opts.log.child({ remoteCluster: this.name });
  }

  /** The cluster ID this peer holds (read from its config, not refused), or null. */
  get clusterId(): number | null {
    return this.id;
  }

  start(): void {
    this.session ??= this.openSession();
  }

  /** New endpoints or certificates: a new session; the records stay until it has resynced. */
  async update(config: PeerConfig): Promise<void> {
    this.config = config;
    this.log.info('peer config changed; reconnecting');
    await this.replaceSession();
  }

  async close(): Promise<void> {
    const session = this.session;
    this.session = null;
    if (session) await this.closeSession(session);
    this.forgetRecords();
  }

  view(): RemoteClusterView | null {
    if (this.id === null) return null;
    this.cachedView ??= {
      name: this.name,
      id: this.id,
      link: this.link,
      services: this.visible('services'),
      nodes: this.visible('nodes'),
      identities: new Map(
        this.synced.identities
          ? [...this.tables.identities.entries()].map(([key, labels]) => [
              parseKeyOfKind('identity', key)!.id,
              encodeIdentityLabels(labels),
            ])
          : [],
      ),
      ipcache: this.visible('ipcache'),
    };
    return this.cachedView;
  }

  status(): RemoteClusterStatus {
    const connected = this.id !== null && this.link.state === 'connected';
    return {
      name: this.name,
      id: this.id,
      connected,
      ready: connected && STATE_KINDS.every((kind) => this.synced[kind]),
      synced: { services: this.usable('services'), nodes: this.usable('nodes'), identities: this.usable('identities'), ipcache: this.usable('ipcache') },
      counts: {
        services: this.tables.services.size,
        nodes: this.tables.nodes.size,
        identities: this.tables.identities.size,
        ipcache: this.tables.ipcache.size,
      },
      failures: this.failures,
      lastFailure: this.lastFailureMs === null ? null : new Date(this.lastFailureMs).toISOString(),
      lastError: this.lastError,
      rejected: this.rejected,
    };
  }

  // ------------------------------------------------------------ sessions

  private openSession(): Session {
    const session: Session = {
      abort: createStopController(),
      client: null,
      link: null,
      stores: [],
      cached: false,
      done: Promise.resolve(),
    };
    session.done = this.runSession(session);
    return session;
  }

  private async replaceSession(): Promise<void> {
    const old = this.session;
    // Until the new session connects the link is down: if it never does, the cache TTL runs.
    this.setLink({ state: 'disconnected', sinceMs: this.now() });
    this.session = this.openSession();
    if (old) await this.closeSession(old);
  }

  private async closeSession(session: Session): Promise<void> {
    session.abort.abort(new Error(`remote cluster ${this.name} closed`));
    await session.done;
    await disconnectPeer(session.client, session.link, session.stores);
  }

  private async runSession(session: Session): Promise<void> {
    let connected: PeerConnection;
    try {
      connected = await retryUntilAborted(
        () => this.connectOnce(session),
        session.abort.signal,
        (err) => session.abort.signal.aborted || this.recordFailure(err.message),
        this.opts.backoff,
      );
    } catch {
      return; // aborted: the session was replaced or closed
    }
    if (session.abort.signal.aborted) return; // closeSession closes session.client
    this.setLink({ state: 'connected' });
    this.watchLink(session, connected);
    this.startStores(session, connected);
  }

  /** Dials, reads the cluster config, checks it and claims its ID; throws one line on failure. */
  private connectOnce(session: Session): Promise<PeerConnection> {
    return connectPeer(this.config, {
      dialTimeoutMs: this.opts.dialTimeoutMs,
      missingConfigHint: `if that etcd is this cluster's own kvstoremesh cache: has the kvstoremesh reached "${this.name}" yet? see its log`,
      accept: (config, client) => {
        // p-retry gives up on abort without waiting for this attempt: an aborted session must
        // neither claim an ID nor keep a client that nobody closes.
        if (session.abort.signal.aborted) throw new Error('aborted');
        this.claimId(config.id);
        session.client = client;
      },
    });
  }

  /** Synchronous from check to claim, so two peers can never both take one ID. */
  private claimId(id: number): void {
    const conflict = this.opts.idConflict(id);
    if (conflict) {
      if (this.id !== null) this.forgetRecords();
      throw new Error(`refused: ${conflict}`);
    }
    if (this.id !== null && this.id !== id) {
      this.log.warn({ from: this.id, to: id }, 'peer changed its cluster ID; dropping its records');
      this.forgetRecords();
    }
    this.id = id;
    this.changed();
  }

  private forgetRecords(): void {
    for (const kind of STATE_KINDS) {
      this.tables[kind].clear();
      this.synced[kind] = false;
    }
    this.id = null;
    this.changed();
  }

  /** The link's pulse and the peer's config changes (lib/remotes/peer-link.ts). */
  private watchLink(session: Session, connected: PeerConnection): void {
    const current = () => this.session === session && !session.abort.signal.aborted;
    session.link = new PeerLink({
      client: connected.client,
      peer: this.name,
      config: connected.config,
      revision: connected.revision,
      backoff: this.opts.backoff,
      handlers: {
        up: () => current() && this.setLink({ state: 'connected' }),
        lost: (err) => current() && this.linkLost(err),
        changed: (config) => current() && config !== null && this.configChanged(config),
        invalid: (reason) => current() && this.recordFailure(`invalid cluster config: ${reason}`),
      },
    });
    session.link.start();
  }

  /** Counted once per outage: etcd3 reports a broken stream more than once, the first says most. */
  private linkLost(err: Error): void {
    if (this.link.state !== 'connected') return;
    this.recordFailure(classifyEtcdError(err, this.config.endpoints).message);
    this.setLink({ state: 'disconnected', sinceMs: this.now() });
  }

  /**
   * A new ID, or cached or not (which decides the prefixes to read: a kvstoremesh taking over or
   * leaving), means a new session, whose resync replaces the records without a gap. A deleted
   * config changes nothing here: the records stay until the peer's canaries say otherwise.
   */
  private configChanged(config: ClusterConfig): void {
    const cached = config.capabilities.cached === true;
    if (config.id !== this.id || cached !== this.session?.cached) void this.replaceSession();
  }

  private startStores(session: Session, connected: PeerConnection): void {
    const { id: clusterID, capabilities } = connected.config;
    session.cached = capabilities.cached === true;
    for (const kind of STATE_KINDS) {
      const spec = STATE_KIND_SPECS[kind];
      // A cached peer (its config republished by the local kvstoremesh) is read under
      // cilium/cache/… of this same etcd; its records keep their state keys from here on.
      const source = stateSource(kind, this.name, session.cached);
      const table = this.tables[kind] as RecordTable<unknown>;
      table.beginResync();
      const store = new WatchStore<unknown>({
        client: connected.client,
        prefix: source.prefix,
        // A peer that does not announce canaries (older Cilium) is synced once listed.
        canaryKey: capabilities.syncedCanaries ? source.canaryKey : undefined,
        decode: (key, bytes) =>
          validateRemoteRecord(spec.record, source.toStateKey(key), bytes, { cluster: this.name, clusterID }),
        onEvent: (event) =>
          this.session === session &&
          this.apply(kind, table, { ...event, key: source.toStateKey(event.key) }),
        onReject: (key, reason) =>
          this.session === session && this.reject(kind, source.toStateKey(key), reason),
        onSynced: () => this.session === session && this.markSynced(kind, table),
        onRelist: () => this.opts.metrics.relists.inc({ cluster: this.name, kind }),
        backoff: this.opts.backoff,
        logger: this.log.child({ kind }),
        endpoints: this.config.endpoints,
      });
      session.stores.push(store);
      store.start();
    }
  }

  // ------------------------------------------------------------ records and status

  private apply(kind: StateKind, table: RecordTable<unknown>, event: WatchEvent<unknown>): void {
    if (event.type === 'upsert') table.upsert(event.key, event.value);
    else table.delete(event.key);
    this.opts.metrics.events.inc({ cluster: this.name, kind, op: event.type });
    if (this.synced[kind]) this.changed();
  }

  private reject(kind: StateKind, key: string, reason: string): void {
    this.rejected++;
    this.opts.metrics.rejected.inc({ cluster: this.name, kind, reason: rejectionClass(key, reason) });
    this.log.warn({ kind }, `rejected a record from ${this.name}: ${firstLine(reason)}`);
  }

  private markSynced(kind: StateKind, table: RecordTable<unknown>): void {
    const gone = table.endResync();
    if (gone.length > 0)
      this.opts.metrics.events.inc({ cluster: this.name, kind, op: 'delete' }, gone.length);
    this.synced[kind] = true;
    this.log.info({ kind, records: table.size }, `${kind} of ${this.name} synced`);
    this.changed();
  }

  private recordFailure(message: string): void {
    this.failures++;
    this.lastFailureMs = this.now();
    this.lastError = firstLine(message);
    this.log.warn(this.lastError);
  }

  private setLink(link: LinkState): void {
    if (link.state === this.link.state) return;
    this.link = link;
    this.log.info(`link ${link.state}`);
    this.changed();
  }

  private visible<K extends 'services' | 'nodes' | 'ipcache'>(kind: K): ReturnType<Tables[K]['values']> {
    return (this.usable(kind) ? this.tables[kind].values() : []) as ReturnType<Tables[K]['values']>;
  }

  /**
   * Services and ipcache count as synced once the node records are too: what a peer owns is what
   * its nodes claim (lib/kvstore/ownership.ts), so before that every address would be refused, and
   * the agent would drop the backends it restored from the pinned maps for nothing.
   */
  private usable(kind: StateKind): boolean {
    return this.synced[kind] && (kind === 'nodes' || kind === 'identities' || this.synced.nodes);
  }

  private changed(): void {
    this.cachedView = null;
    this.opts.onChange();
  }
}
