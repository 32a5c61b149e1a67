/** The daemon's Prometheus metrics, on its own registry (one per daemon, so tests run several). */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { createMetricsRegistry } from '../lib/metrics.js';

export interface DaemonMetrics {
  registry: Registry;
  /** informer event → record handed to the kvstore, per queue */
  syncLatency: Histogram<'queue'>;
  /** errors by kind: etcd, informer:<Kind>, reconcile:<queue>, identity, remotes, heartbeat, cluster-config */
  errors: Counter<'kind'>;
  /** Kubernetes objects (or parts of them) skipped as invalid, by object kind */
  rejections: Counter<'kind'>;
  /** the cluster config key written back after someone else deleted or edited it */
  clusterConfigRestores: Counter<'reason'>;
}

export interface MetricSources {
  queueDepths: () => Record<string, number>;
  /** records this daemon publishes, by kind (services, nodes, identities, ipcache) */
  objectCounts: () => Record<string, number>;
  /** kvstore operations per store: writes, deletes, skipped */
  kvstoreCounters: () => Record<string, { writes: number; deletes: number; skipped: number; errors: number }>;
  ready: () => boolean;
}

const PREFIX = 'clustermesh_apiserver_';

export function createDaemonMetrics(cluster: string, sources: () => MetricSources): DaemonMetrics {
  const registry = createMetricsRegistry({ defaultMetrics: true, labels: { cluster } });
  const registers = [registry];
  const syncLatency = new Histogram({
    name: `${PREFIX}sync_latency_seconds`,
    help: 'Time from a Kubernetes event to its records being handed to the kvstore writer',
    labelNames: ['queue'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const errors = new Counter({
    name: `${PREFIX}errors_total`,
    help: 'Errors by kind (each failed attempt; every one is retried)',
    labelNames: ['kind'],
    registers,
  });
  const rejections = new Counter({
    name: `${PREFIX}rejections_total`,
    help: 'Kubernetes objects or parts of them skipped as invalid, by object kind',
    labelNames: ['kind'],
    registers,
  });
  const clusterConfigRestores = new Counter({
    name: `${PREFIX}cluster_config_restores_total`,
    help: 'The cluster config key written back after someone else deleted or edited it, by reason',
    labelNames: ['reason'],
    registers,
  });
  new Gauge({
    name: `${PREFIX}queue_depth`,
    help: 'Keys waiting or being reconciled, per work queue',
    labelNames: ['queue'],
    registers,
    collect() {
      for (const [queue, depth] of Object.entries(sources().queueDepths())) this.set({ queue }, depth);
    },
  });
  new Gauge({
    name: `${PREFIX}objects`,
    help: 'Records published into the kvstore, by kind',
    labelNames: ['kind'],
    registers,
    collect() {
      for (const [kind, count] of Object.entries(sources().objectCounts())) this.set({ kind }, count);
    },
  });
  new Gauge({
    name: `${PREFIX}kvstore_operations`,
    help: 'kvstore operations since start, per store and operation (skipped = bytes unchanged)',
    labelNames: ['store', 'operation'],
    registers,
    collect() {
      for (const [store, counters] of Object.entries(sources().kvstoreCounters())) {
        for (const [operation, count] of Object.entries(counters)) this.set({ store, operation }, count);
      }
    },
  });
  new Gauge({
    name: `${PREFIX}ready`,
    help: '1 once the initial sync of every prefix is complete',
    registers,
    collect() {
      this.set(sources().ready() ? 1 : 0);
    },
  });
  return { registry, syncLatency, errors, rejections, clusterConfigRestores };
}
