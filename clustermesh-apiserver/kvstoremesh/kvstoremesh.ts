/**
 * KVStoreMesh (after Cilium's): one process per cluster mirrors every peer of the remotes Secret
 * into the local etcd, so the cluster's agents open one connection, to their own etcd, instead of
 * one per peer each. Peers are added, updated and removed at run time as the agent's are
 * (lib/remotes/), with the same ID checks; the local agents read through the `local-reader` user.
 *
 * Nothing enters the cache that an agent would refuse: besides the import validation of each
 * record (peer-mirror.ts), address ownership (lib/kvstore/ownership-gate.ts) is decided over every
 * peer's services, nodes and ipcache at once, against the local cluster's addresses, and only
 * what it admits is written. A decision covers the whole mesh, so changes are coalesced and
 * decisions paced as the agent's loop is (lib/pass-pacing.ts); until the local addresses are known
 * nothing is decided, so nothing new is admitted.
 */
import type { Etcd3 } from 'etcd3';
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, type Registry } from 'prom-client';
import { decodeClusterConfig } from '../../lib/kvstore/codecs.js';
import { connectEtcd, classifyEtcdError, type EtcdClientConfig } from '../../lib/kvstore/etcd.js';
import { CLUSTER_CONFIG_PREFIX } from '../../lib/kvstore/keys.js';
import { OwnershipGate } from '../../lib/kvstore/ownership-gate.js';
import type { LocalAddresses } from '../../lib/kvstore/ownership.js';
import { createStopController, retryUntilAborted, type BackoffOptions } from '../../lib/kvstore/retry.js';
import type { Logger } from '../../lib/log.js';
import { nextPassAtMs, peersStillSyncing, type LastPass } from '../../lib/pass-pacing.js';
import type { PeerConfigSource } from '../../lib/remotes/config-source.js';
import {
  clusterIdConflict,
  planPeerChanges,
  withoutLocalCluster,
  type PeerConfig,
  type PeerConfigSet,
} from '../../lib/remotes/peer-config.js';
import { ensureLocalReader } from '../etcd-bootstrap.js';
import {
  PeerMirror,
  deletePeerCache,
  type MirrorRecords,
  type PeerMirrorMetrics,
  type PeerMirrorStatus,
} from './peer-mirror.js';

export const DEFAULT_PEER_CACHE_TTL_MS = 5 * 60_000;
const REJECTED_METRIC = 'clustermesh_kvstoremesh_rejected_records_total';
/** A burst of record changes within this time makes one decision. */
const DECISION_COALESCE_MS = 10;

/** What the local cluster holds (clustermesh-apiserver/kvstoremesh/local-cluster.ts; a fake in tests). */
export interface LocalAddressSource {
  /** null until known; a new object only when the content changed */
  current(): LocalAddresses | null;
  onChange(listener: () => void): () => void;
}

export interface KVStoreMeshOptions {
  cluster: { name: string; id: number };
  /** the local etcd, as admin */
  etcd: EtcdClientConfig;
  source: PeerConfigSource;
  /** the addresses no peer may publish */
  local: LocalAddressSource;
  log: Logger;
  registry: Registry;
  cacheTtlMs?: number;
  backoff?: BackoffOptions;
  dialTimeoutMs?: number;
}

export class KVStoreMesh {
  private readonly mirrors = new Map<string, PeerMirror>();
  private invalid = new Map<string, string>();
  private readonly removing = new Set<Promise<void>>();
  private readonly abort = createStopController();
  private local: Etcd3 | null = null;
  private readonly metrics: PeerMirrorMetrics;
  private readonly ownership: OwnershipGate<MirrorRecords>;
  private unsubscribeLocal: (() => void) | null = null;
  private decisionTimer: NodeJS.Timeout | null = null;
  private lastDecision: LastPass | null = null;
  /** the gate's last answer, written already */
  private lastAdmitted: MirrorRecords[] | null = null;

  constructor(private readonly opts: KVStoreMeshOptions) {
    const registers = [opts.registry];
    this.metrics = {
      rejected: new Counter({
        name: REJECTED_METRIC,
        help: 'Records (or backends of one) read from a peer and refused by the import validation or for an address the peer does not own (never cached), by kind and reason',
        labelNames: ['cluster', 'kind', 'reason'],
        registers,
      }),
      relists: new Counter({
        name: 'clustermesh_kvstoremesh_peer_relists_total',
        help: "Listings of a peer's records after the first: each follows a broken watch, compacted history or the canary's return",
        labelNames: ['cluster', 'kind'],
        registers,
      }),
    };
    this.ownership = new OwnershipGate({
      log: opts.log.child({ component: 'ownership' }),
      rejected: this.metrics.rejected,
      rejectedMetric: REJECTED_METRIC,
    });
    const statuses = () => this.status();
    new Gauge({
      name: 'clustermesh_kvstoremesh_peer_synced',
      help: '1 when every kind of the peer is in the cache with its canary written',
      labelNames: ['cluster'],
      registers,
      collect() {
        this.reset();
        for (const peer of statuses()) this.set({ cluster: peer.name }, peer.synced ? 1 : 0);
      },
    });
    new Gauge({
      name: 'clustermesh_kvstoremesh_peer_connected',
      help: "1 while the link to the peer's etcd is up (its cache outlives an outage for the peer cache TTL)",
      labelNames: ['cluster'],
      registers,
      collect() {
        this.reset();
        for (const peer of statuses()) this.set({ cluster: peer.name }, peer.connected ? 1 : 0);
      },
    });
    new Gauge({
      name: 'clustermesh_kvstoremesh_cached_records',
      help: 'Records of a peer held in the cache (valid and, for services, nodes and ipcache, admitted), by kind',
      labelNames: ['cluster', 'kind'],
      registers,
      collect() {
        this.reset();
        for (const peer of statuses())
          for (const [kind, count] of Object.entries(peer.records))
            this.set({ cluster: peer.name, kind }, count);
      },
    });
  }

  /** Connects to the local etcd (retrying), creates the local reader, starts following the peers. */
  async start(): Promise<void> {
    const { etcd, log } = this.opts;
    const retry = <T>(what: string, attempt: () => Promise<T>) =>
      retryUntilAborted(
        attempt,
        this.abort.signal,
        (err) => log.warn(`${what} failed, retrying: ${classifyEtcdError(err, etcd.endpoints).message}`),
        this.opts.backoff,
      );
    this.local = await retry('connect to the local etcd', () => connectEtcd(etcd));
    await retry('create the local reader user', () => ensureLocalReader(this.local!));
    this.unsubscribeLocal = this.opts.local.onChange(() => this.scheduleDecision());
    await this.opts.source.start((set) => this.apply(set));
    await retry('drop the caches of peers removed while stopped', () => this.dropUnknownCaches());
  }

  /** A peer removed while this process was not running still has its cache: the first set decides. */
  private async dropUnknownCaches(): Promise<void> {
    const local = this.local!;
    const configs = await local.getAll().prefix(`${CLUSTER_CONFIG_PREFIX}/`).strings();
    for (const [key, value] of Object.entries(configs)) {
      const name = key.slice(CLUSTER_CONFIG_PREFIX.length + 1);
      const config = decodeClusterConfig(key, Buffer.from(value));
      if (
        this.mirrors.has(name) ||
        name === this.opts.cluster.name ||
        !config.ok ||
        !config.value.capabilities.cached
      )
        continue;
      await deletePeerCache(local, name, { withConfig: true });
      this.opts.log.info(`peer ${name} is no longer configured; its cache is deleted`);
    }
  }

  async stop(): Promise<void> {
    this.abort.abort(new Error('kvstoremesh stopped'));
    this.unsubscribeLocal?.();
    if (this.decisionTimer) clearTimeout(this.decisionTimer);
    await this.opts.source.stop();
    const mirrors = [...this.mirrors.values()];
    this.mirrors.clear();
    await Promise.all([...mirrors.map((mirror) => mirror.close()), ...this.removing]);
    this.local?.close();
  }

  status(): PeerMirrorStatus[] {
    const running = [...this.mirrors.values()].map((mirror) => {
      const status = mirror.status();
      return { ...status, rejected: status.rejected + this.ownership.rejected(status.name) };
    });
    const unusable = [...this.invalid]
      .filter(([name]) => !this.mirrors.has(name))
      .map(([name, error]): PeerMirrorStatus => ({
        name,
        id: null,
        connected: false,
        synced: false,
        records: { services: 0, nodes: 0, identities: 0, ipcache: 0 },
        rejected: 0,
        lastError: error,
      }));
    return [...running, ...unusable].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Resolves once every current peer is synced into the cache. */
  async whenSynced(): Promise<void> {
    await Promise.all([...this.mirrors.values()].map((mirror) => mirror.whenSynced()));
  }

  private apply(received: PeerConfigSet): void {
    if (this.abort.signal.aborted || !this.local) return;
    const set = withoutLocalCluster(received, this.opts.cluster.name);
    this.invalid = new Map(set.invalid.map(({ name, error }) => [name, error]));
    for (const { error } of set.invalid) this.opts.log.warn(error);
    // A broken edit of a running peer's entry keeps the peer on its last valid config.
    const kept = [...this.mirrors.values()]
      .filter((mirror) => this.invalid.has(mirror.name))
      .map((mirror) => this.configs.get(mirror.name)!);
    const running = new Map([...this.mirrors.keys()].map((name) => [name, this.configs.get(name)!]));
    const plan = planPeerChanges(running, [...set.peers, ...kept]);
    for (const name of plan.remove) this.remove(name);
    for (const config of plan.update) {
      this.configs.set(config.name, config);
      void this.mirrors.get(config.name)!.update(config);
    }
    for (const config of plan.add) this.add(config);
    if (plan.add.length + plan.update.length + plan.remove.length > 0)
      this.opts.log.info(
        { add: plan.add.map((p) => p.name), update: plan.update.map((p) => p.name), remove: plan.remove },
        'peers changed',
      );
  }

  private readonly configs = new Map<string, PeerConfig>();

  private add(config: PeerConfig): void {
    const mirror = new PeerMirror({
      config,
      local: this.local!,
      localEndpoints: this.opts.etcd.endpoints,
      idConflict: (id) => this.idConflict(config.name, id),
      cacheTtlMs: this.opts.cacheTtlMs ?? DEFAULT_PEER_CACHE_TTL_MS,
      onRecordsChange: () => this.scheduleDecision(),
      log: this.opts.log,
      metrics: this.metrics,
      backoff: this.opts.backoff,
      dialTimeoutMs: this.opts.dialTimeoutMs,
    });
    this.configs.set(config.name, config);
    this.mirrors.set(config.name, mirror);
    mirror.start();
  }

  private remove(name: string): void {
    const mirror = this.mirrors.get(name)!;
    this.mirrors.delete(name);
    this.configs.delete(name);
    const removed = mirror
      .remove(this.abort.signal)
      .catch(() => undefined) // stopped while deleting: the next start finds the peer gone again
      .finally(() => this.removing.delete(removed));
    this.removing.add(removed);
    this.scheduleDecision(); // its claims leave the decision
  }

  // ------------------------------------------------------------ address ownership

  /** One decision per burst of changes, paced by the last one's cost and by peers still listing. */
  private scheduleDecision(): void {
    if (this.decisionTimer || this.abort.signal.aborted) return;
    const nowMs = performance.now();
    const syncing = peersStillSyncing([...this.mirrors.values()].map((mirror) => mirror.syncState()));
    const delayMs = Math.max(nextPassAtMs(this.lastDecision, syncing, nowMs) - nowMs, DECISION_COALESCE_MS);
    this.decisionTimer = setTimeout(() => {
      this.decisionTimer = null;
      this.decide();
    }, delayMs);
  }

  /** Every peer's held records through the gate at once; each mirror writes what is admitted of its own. */
  private decide(): void {
    if (this.abort.signal.aborted) return;
    const local = this.opts.local.current();
    if (local === null) return; // told again once the local addresses are known
    const startMs = performance.now();
    const views = [...this.mirrors.values()]
      .map((mirror) => mirror.records())
      .filter((view): view is MirrorRecords => view !== null)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const admitted = this.ownership.admit(views, local);
    if (admitted !== this.lastAdmitted) {
      for (const view of admitted) this.mirrors.get(view.name)?.write(view);
      this.lastAdmitted = admitted;
    }
    this.lastDecision = { startMs, durationMs: performance.now() - startMs };
  }

  private idConflict(name: string, id: number): string | null {
    const claimed = [...this.mirrors.values()].map((mirror) => ({ name: mirror.name, id: mirror.clusterId }));
    return clusterIdConflict(name, id, this.opts.cluster, claimed);
  }
}
