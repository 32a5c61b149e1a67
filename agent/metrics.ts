/**
 * The agent's Prometheus metrics. Per-peer series are read from the remote clusters' status at
 * scrape time (no second copy of that state to keep in step); the loop records the rest.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ProgramStats } from '../lib/datapath/index.js';

/** The part of a remote cluster's status the metrics read (RemoteClusterStatus has more). */
export interface PeerStatusLike {
  name: string;
  ready: boolean;
  failures: number;
  /** ISO time of the last failure, or null */
  lastFailure: string | null;
}

export interface PeerCounts {
  services: number;
  endpoints: number;
  nodes: number;
}

export interface AgentMetricsSources {
  peers(): readonly PeerStatusLike[];
  /** services, endpoints (backend addresses) and nodes per peer, from the views */
  peerCounts(): ReadonlyMap<string, PeerCounts>;
  /** the datapath programs' own counters (Datapath.programStats: per-CPU map cells, summed) */
  programStats(): ProgramStats;
}

/** The `event` label of each program counter. */
const PROGRAM_EVENTS: Record<keyof ProgramStats, string> = {
  sockStateFailed: 'sock_state_failed',
  sockPeerReplaced: 'sock_peer_replaced',
};

export class AgentMetrics {
  readonly syncDuration: Histogram;
  readonly mapOps: Counter<'op'>;
  readonly reconciles: Counter<'result'>;
  readonly globalServices: Gauge;
  readonly routes: Gauge<'state'>;
  readonly datapathEntries: Gauge<'kind'>;

  constructor(registry: Registry, sources: AgentMetricsSources) {
    const registers = [registry];
    /** A gauge per remote cluster, recomputed at every scrape so a removed peer disappears. */
    const perCluster = (name: string, help: string, values: () => Iterable<[string, number | null]>): void => {
      new Gauge({
        name,
        help,
        labelNames: ['cluster'],
        registers,
        collect() {
          this.reset();
          for (const [cluster, v] of values()) if (v !== null) this.set({ cluster }, v);
        },
      });
    };
    const perPeer = (name: string, help: string, value: (p: PeerStatusLike) => number | null): void =>
      perCluster(name, help, () => sources.peers().map((p): [string, number | null] => [p.name, value(p)]));
    const perPeerCount = (name: string, help: string, field: keyof PeerCounts): void =>
      perCluster(name, help, () => [...sources.peerCounts()].map(([cluster, counts]): [string, number] => [cluster, counts[field]]));
    new Gauge({
      name: 'clustermesh_agent_remote_clusters',
      help: 'Remote clusters configured',
      registers,
      collect() {
        this.set(sources.peers().length);
      },
    });
    perPeer('clustermesh_agent_remote_cluster_ready', 'Whether a remote cluster is connected and synced (1) or not (0)', (p) => Number(p.ready));
    perPeer('clustermesh_agent_remote_cluster_failures', 'Connection failures to a remote cluster since start', (p) => p.failures);
    perPeer('clustermesh_agent_remote_cluster_last_failure_timestamp_seconds', 'Time of the last failure of a remote cluster', (p) =>
      p.lastFailure === null ? null : Date.parse(p.lastFailure) / 1000,
    );
    perPeerCount('clustermesh_agent_remote_services', 'Services a remote cluster publishes', 'services');
    perPeerCount('clustermesh_agent_remote_endpoints', 'Backend addresses a remote cluster publishes', 'endpoints');
    perPeerCount('clustermesh_agent_remote_nodes', 'Nodes a remote cluster publishes', 'nodes');
    // The kernel keeps these counts in the pinned maps, across agent restarts: the agent only reads them.
    new Counter({
      name: 'clustermesh_agent_datapath_program_events_total',
      help: 'Events counted by the datapath programs: a translated socket without storage for its frontend (sock_state_failed), a socket that addressed more frontends than it keeps (sock_peer_replaced)',
      labelNames: ['event'],
      registers,
      collect() {
        const stats = sources.programStats();
        this.reset();
        for (const [field, event] of Object.entries(PROGRAM_EVENTS)) this.inc({ event }, stats[field as keyof ProgramStats]);
      },
    });
    this.globalServices = new Gauge({
      name: 'clustermesh_agent_global_services',
      help: 'Local global services programmed in the datapath',
      registers,
    });
    this.syncDuration = new Histogram({
      name: 'clustermesh_agent_datapath_sync_duration_seconds',
      help: 'Time of one datapath reconcile (diff + map writes)',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.mapOps = new Counter({
      name: 'clustermesh_agent_datapath_map_ops_total',
      help: 'Map entries written (update) or removed (delete) by the agent',
      labelNames: ['op'],
      registers,
    });
    this.reconciles = new Counter({
      name: 'clustermesh_agent_reconciles_total',
      help: 'Reconcile passes of the agent loop, by result',
      labelNames: ['result'],
      registers,
    });
    this.datapathEntries = new Gauge({
      name: 'clustermesh_agent_datapath_entries',
      help: 'Frontends (service) and backends (backend) in the datapath after the last reconcile',
      labelNames: ['kind'],
      registers,
    });
    this.routes = new Gauge({
      name: 'clustermesh_agent_pod_routes',
      help: 'Cross-cluster pod routes: installed, or refused/failed',
      labelNames: ['state'],
      registers,
    });
  }
}
