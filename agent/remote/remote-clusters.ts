/**
 * The agent's remote clusters: one RemoteCluster per peer of the config source, added, updated
 * and removed at run time. The agent's loop reads `views()` on every `onChange()`; the status API
 * and metrics read `status()`.
 */
import { Counter, type Registry } from 'prom-client';
import { OwnershipGate } from '../../lib/kvstore/ownership-gate.js';
import { NO_LOCAL_ADDRESSES, type LocalAddresses } from '../../lib/kvstore/ownership.js';
import type { BackoffOptions } from '../../lib/kvstore/retry.js';
import type { Logger } from '../../lib/log.js';
import type { PeerConfigSource } from '../../lib/remotes/config-source.js';
import {
  clusterIdConflict,
  planPeerChanges,
  withoutLocalCluster,
  type PeerConfig,
  type PeerConfigSet,
} from '../../lib/remotes/peer-config.js';
import {
  RemoteCluster,
  type RemoteClusterMetrics,
  type RemoteClusterStatus,
  type RemoteClusterView,
} from './remote-cluster.js';

export type { RemoteClusterStatus, RemoteClusterView } from './remote-cluster.js';
export type { PeerConfigSource } from '../../lib/remotes/config-source.js';

export interface RemoteClustersOptions {
  localCluster: { name: string; id: number };
  source: PeerConfigSource;
  /**
   * What the local cluster holds (never a peer's: lib/kvstore/ownership.ts); null until known,
   * and then no peer record is admitted. A new object whenever it changed. Absent: nothing local
   * (the peers' own claims and the never-routable ranges still apply); the agent always sets it.
   */
  localAddresses?: () => LocalAddresses | null;
  log: Logger;
  metrics: Registry;
  backoff?: BackoffOptions;
  dialTimeoutMs?: number;
  /** A burst of changes within this time makes one onChange call (default 10 ms). */
  coalesceMs?: number;
}

interface Peer {
  config: PeerConfig;
  cluster: RemoteCluster;
}

const REJECTED_METRIC = 'clustermesh_agent_rejected_records_total';

const byName = <T extends { name: string }>(a: T, b: T): number =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : 0;

export class RemoteClusters {
  private readonly peers = new Map<string, Peer>();
  /** peer name → why its entry cannot be used */
  private invalid = new Map<string, string>();
  private readonly listeners = new Set<() => void>();
  private readonly closing = new Set<Promise<void>>();
  private readonly metrics: RemoteClusterMetrics;
  private readonly ownership: OwnershipGate<RemoteClusterView>;
  private changeTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly opts: RemoteClustersOptions) {
    const registers = [opts.metrics];
    this.metrics = {
      rejected: new Counter({
        name: REJECTED_METRIC,
        help: 'Records (or backends of one) read from a remote cluster and rejected by the import validation or for an address the cluster does not own, by kind and reason',
        labelNames: ['cluster', 'kind', 'reason'],
        registers,
      }),
      events: new Counter({
        name: 'clustermesh_agent_remote_record_events_total',
        help: 'Valid record upserts and deletes applied from a remote cluster',
        labelNames: ['cluster', 'kind', 'op'],
        registers,
      }),
      relists: new Counter({
        name: 'clustermesh_agent_remote_relists_total',
        help: "Listings of a remote cluster's records after the first: each follows a broken watch, compacted history or the canary's return",
        labelNames: ['cluster', 'kind'],
        registers,
      }),
    };
    this.ownership = new OwnershipGate({ log: opts.log.child({ component: 'ownership' }), rejected: this.metrics.rejected, rejectedMetric: REJECTED_METRIC });
  }

  async start(): Promise<void> {
    await this.opts.source.start((set) => this.apply(set));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.opts.source.stop();
    if (this.changeTimer) clearTimeout(this.changeTimer);
    const peers = [...this.peers.values()];
    this.peers.clear();
    await Promise.all([...peers.map((peer) => peer.cluster.close()), ...this.closing]);
  }

  onChange(cb: () => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** Each peer's records, with only the addresses it owns (lib/kvstore/ownership-gate.ts). */
  views(): RemoteClusterView[] {
    const raw = [...this.peers.values()]
      .map((peer) => peer.cluster.view())
      .filter((view): view is RemoteClusterView => view !== null)
      .sort(byName);
    return this.ownership.admit(raw, this.opts.localAddresses ? this.opts.localAddresses() : NO_LOCAL_ADDRESSES);
  }

  status(): RemoteClusterStatus[] {
    this.views(); // the ownership refusals counted so far are those of the current records
    const running = [...this.peers.values()].map((peer) => {
      const own = peer.cluster.status();
      const status = { ...own, rejected: own.rejected + this.ownership.rejected(own.name) };
      const configError = this.invalid.get(status.name);
      // A broken edit of a running peer's entry keeps the peer on its last valid config.
      return configError
        ? { ...status, lastError: `${configError} (still using the last valid config)` }
        : status;
    });
    const unusable = [...this.invalid]
      .filter(([name]) => !this.peers.has(name))
      .map(([name, error]) => unusableStatus(name, error));
    return [...running, ...unusable].sort(byName);
  }

  private apply(received: PeerConfigSet): void {
    if (this.stopped) return;
    const set = withoutLocalCluster(received, this.opts.localCluster.name);
    this.invalid = new Map(set.invalid.map(({ name, error }) => [name, error]));
    for (const { error } of set.invalid) this.opts.log.warn(error);
    const kept = [...this.peers.values()]
      .filter((peer) => this.invalid.has(peer.config.name))
      .map((peer) => peer.config);
    const running = new Map([...this.peers].map(([name, peer]) => [name, peer.config]));
    const plan = planPeerChanges(running, [...set.peers, ...kept]);
    for (const name of plan.remove) this.remove(name);
    for (const config of plan.update) {
      const peer = this.peers.get(config.name)!;
      peer.config = config;
      void peer.cluster.update(config);
    }
    for (const config of plan.add) this.add(config);
    if (plan.add.length + plan.update.length + plan.remove.length > 0) {
      this.opts.log.info(
        { add: plan.add.map((p) => p.name), update: plan.update.map((p) => p.name), remove: plan.remove },
        'remote clusters changed',
      );
    }
  }

  private add(config: PeerConfig): void {
    const cluster = new RemoteCluster({
      config,
      idConflict: (id) => this.idConflict(config.name, id),
      onChange: () => this.scheduleChange(),
      log: this.opts.log,
      metrics: this.metrics,
      backoff: this.opts.backoff,
      dialTimeoutMs: this.opts.dialTimeoutMs,
    });
    this.peers.set(config.name, { config, cluster });
    cluster.start();
  }

  /** Gone from views() at once (the agent drains it); the connection closes in the background. */
  private remove(name: string): void {
    const peer = this.peers.get(name)!;
    this.peers.delete(name);
    const closed = peer.cluster.close().finally(() => this.closing.delete(closed));
    this.closing.add(closed);
    this.scheduleChange();
  }

  private idConflict(name: string, id: number): string | null {
    const claimed = [...this.peers.values()].map((peer) => ({
      name: peer.config.name,
      id: peer.cluster.clusterId,
    }));
    return clusterIdConflict(name, id, this.opts.localCluster, claimed);
  }

  private scheduleChange(): void {
    if (this.changeTimer || this.stopped) return;
    this.changeTimer = setTimeout(() => {
      this.changeTimer = null;
      for (const listener of [...this.listeners]) {
        try {
          listener();
        } catch (err) {
          this.opts.log.error({ err }, 'a remote-clusters change listener failed');
        }
      }
    }, this.opts.coalesceMs ?? 10);
  }
}

function unusableStatus(name: string, error: string): RemoteClusterStatus {
  const none = { services: 0, nodes: 0, identities: 0, ipcache: 0 };
  return {
    name,
    id: null,
    connected: false,
    ready: false,
    synced: { services: false, nodes: false, identities: false, ipcache: false },
    counts: none,
    failures: 0,
    lastFailure: null,
    lastError: error,
    rejected: 0,
  };
}
