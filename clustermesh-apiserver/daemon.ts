/**
 * The clustermesh-apiserver, wired as client-go controllers are: informers → per-key work queues →
 * reconcilers that compute records with the pure conversions and hand them to one SyncStore per
 * kvstore prefix. Also: etcd bootstrap, the cluster config key (kept: cluster-config.ts), the
 * heartbeat, peers from the remotes Secret, and the health/metrics server.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { errorMessage } from '../lib/errors.js';
import type { ResourceInformer } from '../lib/k8s/informer.js';
import { encodeClusterConfig, encodeTimestamp } from '../lib/kvstore/codecs.js';
import { classifyEtcdError, connectEtcd, type EtcdClientConfig } from '../lib/kvstore/etcd.js';
import { HEARTBEAT_KEY, IDENTITY_ID_PREFIX } from '../lib/kvstore/keys.js';
import { stateSource, type StateKind } from '../lib/kvstore/state-kinds.js';
import { createStopController, retryUntilAborted, type BackoffOptions } from '../lib/kvstore/retry.js';
import { SyncStore } from '../lib/kvstore/sync-store.js';
import type { HostPort } from './config.js';
import { IdentityAllocator, parseExistingIdentities, type ClusterRef } from './convert/index.js';
import { ClusterConfigKeeper } from './cluster-config.js';
import { bootstrapEtcd } from './etcd-bootstrap.js';
import { startHealthServer, type HealthServer } from './health.js';
import { createInformers, type ClusterInformers } from './informers.js';
import { createDaemonMetrics, type DaemonMetrics } from './metrics.js';
import { NodeReconciler } from './reconcile/nodes.js';
import { PodReconciler } from './reconcile/pods.js';
import { RemotesReconciler } from './reconcile/remotes.js';
import { ServiceReconciler } from './reconcile/services.js';
import { WorkQueue, type KeyHandler } from './workqueue.js';

export const REMOTES_SECRET_NAME = 'clustermesh-remotes';
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 60_000;
const MAX_CONNECTED_CLUSTERS = 255;

export interface DaemonOptions {
  cluster: ClusterRef;
  etcd: EtcdClientConfig;
  kubeConfig: KubeConfig;
  healthAddr: HostPort;
  globalNamespacesDefault: boolean;
  /** the daemon's own namespace, where the remotes Secret lives */
  namespace: string;
  logger: Logger;
  heartbeatIntervalMs?: number;
  etcdBackoff?: BackoffOptions;
  /** how long stop() waits for queued work to reach etcd (default 5 s) */
  shutdownTimeoutMs?: number;
}

/** one SyncStore per kind the peers import */
export type StoreName = StateKind;
export type Stores = Record<StoreName, SyncStore>;

interface Running {
  client: Etcd3;
  stores: Stores;
  queues: WorkQueue[];
  heartbeat: NodeJS.Timeout;
  counts: () => Record<StoreName, number>;
}

export class ApiserverDaemon {
  readonly metrics: DaemonMetrics;
  private readonly abort = createStopController();
  private health: HealthServer | null = null;
  private informers: ClusterInformers | null = null;
  private running: Running | null = null;
  private clusterConfig: ClusterConfigKeeper | null = null;
  private phase = 'starting';
  private readyFlag = false;
  private stopping: Promise<void> | null = null;
  private resolveReady!: () => void;
  /** resolves when every prefix's canary and the cluster config are written */
  readonly ready = new Promise<void>((resolve) => (this.resolveReady = resolve));

  constructor(private readonly opts: DaemonOptions) {
    this.metrics = createDaemonMetrics(opts.cluster.name, () => ({
      queueDepths: () => Object.fromEntries((this.running?.queues ?? []).map((q) => [q.name, q.depth])),
      objectCounts: () => this.running?.counts() ?? {},
      kvstoreCounters: () =>
        Object.fromEntries(
          Object.entries(this.running?.stores ?? {}).map(([n, s]) => [n, { ...s.counters }]),
        ),
      ready: () => this.readyFlag,
    }));
  }

  get healthUrl(): string {
    if (!this.health) throw new Error('the daemon has not started its health server yet');
    return this.health.url;
  }

  get isStopping(): boolean {
    return this.stopping !== null;
  }

  get isReady(): boolean {
    return this.readyFlag;
  }

  /** The kvstore writers (their counters say what reached etcd). */
  get stores(): Stores {
    if (!this.running) throw new Error('the daemon has not connected to etcd yet');
    return this.running.stores;
  }

  /**
   * Serves health, connects to etcd (retrying until it answers), bootstraps it and starts syncing.
   * Resolves once syncing has begun; `ready` says when the initial sync is complete.
   */
  async start(): Promise<void> {
    this.health = await startHealthServer(this.opts.healthAddr, {
      registry: this.metrics.registry,
      notReadyReason: () => this.notReadyReason(),
    });
    // Listing a large cluster keeps the API server busy for a while: the lists run while etcd is
    // connected and bootstrapped, and the reconcilers are handed what the caches hold when they
    // subscribe (lib/k8s/informer.ts). Nothing is reconciled before the stores have started.
    const informers = this.startInformers();
    this.phase = 'connecting to etcd';
    const client = await this.retry('connect to etcd', () => connectEtcd(this.opts.etcd));
    try {
      this.phase = 'bootstrapping etcd';
      await this.retry('bootstrap etcd', () => bootstrapEtcd(client, { cluster: this.opts.cluster.name }));
      const clusterConfig = this.keeperOf(client);
      await this.retry('write the cluster config', () => clusterConfig.writeInitial());
      this.clusterConfig = clusterConfig;
      await this.retry('watch the cluster config', () => clusterConfig.watch());
      this.phase = 'restoring identities';
      const allocator = await this.restoreIdentities(client);
      this.running = await this.startSyncing(client, informers, allocator.allocator, allocator.discarded);
    } catch (err) {
      await this.clusterConfig?.stop();
      client.close();
      throw err;
    }
    this.phase = 'initial sync';
    this.opts.logger.info({ health: this.health.url }, 'syncing the cluster into etcd');
  }

  /** Stops watching, hands queued work to etcd (bounded by the shutdown timeout), closes everything. */
  stop(): Promise<void> {
    this.stopping ??= this.shutDown();
    return this.stopping;
  }

  private async shutDown(): Promise<void> {
    this.abort.abort(new Error('daemon stopped'));
    await this.clusterConfig?.stop();
    await Promise.all(Object.values(this.informers ?? {}).map((informer) => informer.stop()));
    const running = this.running;
    if (running) {
      clearInterval(running.heartbeat);
      const flushed = Promise.all([
        ...running.queues.map((q) => q.shutDown()),
        ...Object.values(running.stores).map((s) => s.drain()),
      ]);
      const timeoutMs = this.opts.shutdownTimeoutMs ?? 5_000;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>(
        (resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)),
      );
      if ((await Promise.race([flushed, timedOut])) === 'timeout')
        this.opts.logger.warn(`shutdown: queued work not written to etcd within ${timeoutMs} ms; dropped`);
      clearTimeout(timer);
      await Promise.all(Object.values(running.stores).map((s) => s.stop()));
      running.client.close();
    }
    await this.health?.close();
    this.opts.logger.info('stopped');
  }

  private notReadyReason(): string | null {
    if (this.readyFlag) return null;
    if (!this.running) return this.phase;
    const pending = Object.entries(this.running.stores)
      .filter(([, store]) => !store.synced)
      .map(([name]) => name);
    return `initial sync of ${pending.join(', ') || 'the cluster'} not complete`;
  }

  private retry<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    return retryUntilAborted(
      attempt,
      this.abort.signal,
      (err) => {
        this.metrics.errors.inc({ kind: 'etcd' });
        this.opts.logger.warn(
          { attempt: err.attemptNumber },
          `${what} failed, retrying: ${classifyEtcdError(err, this.opts.etcd.endpoints).message}`,
        );
      },
      this.opts.etcdBackoff,
    );
  }

  private keeperOf(client: Etcd3): ClusterConfigKeeper {
    return new ClusterConfigKeeper({
      client,
      cluster: this.opts.cluster.name,
      value: encodeClusterConfig({
        id: this.opts.cluster.id,
        capabilities: { syncedCanaries: true, maxConnectedClusters: MAX_CONNECTED_CLUSTERS },
      }),
      logger: this.opts.logger.child({ component: 'cluster-config' }),
      onRestored: (reason) => this.metrics.clusterConfigRestores.inc({ reason }),
      onError: () => this.metrics.errors.inc({ kind: 'cluster-config' }),
    });
  }

  private async restoreIdentities(
    client: Etcd3,
  ): Promise<{ allocator: IdentityAllocator; discarded: Array<{ key: string; reason: string }> }> {
    const pairs = await this.retry('read existing identities', () =>
      client.getAll().prefix(`${IDENTITY_ID_PREFIX}/`).strings(),
    );
    const existing = parseExistingIdentities(
      this.opts.cluster.id,
      Object.entries(pairs).map(([key, value]) => ({ key, value })),
    );
    this.opts.logger.info({ restored: existing.byLabels.size }, 'restored identities from etcd');
    return {
      allocator: new IdentityAllocator(this.opts.cluster.id, existing.byLabels),
      discarded: existing.discarded,
    };
  }

  private startInformers(): ClusterInformers {
    const informers = createInformers({
      kubeConfig: this.opts.kubeConfig,
      logger: this.opts.logger,
      namespace: this.opts.namespace,
      remotesSecretName: REMOTES_SECRET_NAME,
      onError: (kind) => this.metrics.errors.inc({ kind: `informer:${kind}` }),
    });
    this.informers = informers;
    Object.values(informers).forEach((informer) => void informer.start());
    return informers;
  }

  private async startSyncing(
    client: Etcd3,
    informers: ClusterInformers,
    allocator: IdentityAllocator,
    discardedIdentities: Array<{ key: string; reason: string }>,
  ): Promise<Running> {
    const { cluster, logger } = this.opts;
    const stores = this.createStores(client);
    for (const { key, reason } of discardedIdentities) {
      logger.warn({ key }, `deleting identity key ${key}: ${reason}`);
      stores.identities.delete(key);
    }
    const context = { cluster, metrics: this.metrics };
    const services = new ServiceReconciler({
      ...context,
      logger: logger.child({ component: 'services' }),
      informers,
      store: stores.services,
      globalNamespacesByDefault: this.opts.globalNamespacesDefault,
    });
    const nodes = new NodeReconciler({
      ...context,
      logger: logger.child({ component: 'nodes' }),
      informers,
      store: stores.nodes,
    });
    const pods = new PodReconciler({
      ...context,
      logger: logger.child({ component: 'pods' }),
      informers,
      identities: stores.identities,
      ipcache: stores.ipcache,
      allocator,
      globalNamespacesByDefault: this.opts.globalNamespacesDefault,
    });
    const remotes = new RemotesReconciler({
      self: cluster.name,
      secretName: REMOTES_SECRET_NAME,
      namespace: this.opts.namespace,
      client,
      informers,
      logger: logger.child({ component: 'remotes' }),
    });
    const serviceQueue = this.queue('services', (key) => services.reconcile(key));
    const nodeQueue = this.queue('nodes', (key) => nodes.reconcile(key));
    const podQueue = this.queue('pods', (key) => pods.reconcile(key));
    const remotesQueue = this.queue('remotes', () => remotes.reconcile());
    remotesQueue.run();
    services.watch(serviceQueue);
    nodes.watch(nodeQueue);
    pods.watch(podQueue);
    remotes.watch(remotesQueue);

    await Promise.all(Object.values(stores).map((s) => s.start()));
    const heartbeat = this.startHeartbeat(client);

    const syncPrefix = async (
      sources: Array<Pick<ResourceInformer<never>, 'synced'>>,
      queue: WorkQueue,
      targets: SyncStore[],
      beforeMark = () => {},
    ) => {
      await Promise.all(sources.map((informer) => informer.synced));
      // Reconciling before every cache is complete would publish transient records (a Service
      // without its slices, a pod identity without its namespace labels) and rewrite them later.
      queue.run();
      await queue.flushed();
      beforeMark();
      targets.forEach((store) => store.markInitialSyncDone());
      await Promise.all(targets.map((store) => store.whenSynced()));
    };
    const { services: svcs, endpointSlices, namespaces, serviceExports } = informers;
    void Promise.all([
      syncPrefix([svcs, endpointSlices, namespaces, serviceExports], serviceQueue, [stores.services]),
      syncPrefix([informers.nodes], nodeQueue, [stores.nodes]),
      syncPrefix([informers.pods, namespaces], podQueue, [stores.identities, stores.ipcache], () =>
        pods.releaseUnclaimedIdentities(),
      ),
    ]).then(() => this.markReady());

    return {
      client,
      stores,
      queues: [serviceQueue, nodeQueue, podQueue, remotesQueue],
      heartbeat,
      counts: () => ({
        services: services.publishedCount,
        nodes: nodes.publishedCount,
        identities: pods.identityCount,
        ipcache: pods.ipcacheCount,
      }),
    };
  }

  private markReady(): void {
    if (this.abort.signal.aborted) return;
    this.readyFlag = true;
    this.resolveReady();
    this.opts.logger.info({ published: this.running?.counts() }, 'initial sync complete; ready');
  }

  private createStores(client: Etcd3): Stores {
    const { cluster, logger } = this.opts;
    const store = (kind: StateKind) => {
      // what the peers read from this cluster's etcd (lib/kvstore/state-kinds.ts) is what it writes
      const { prefix, canaryKey } = stateSource(kind, cluster.name, false);
      return new SyncStore({
        client,
        prefix,
        canaryKey,
        backoff: this.opts.etcdBackoff,
        logger: logger.child({ store: kind }),
        endpoints: this.opts.etcd.endpoints,
      });
    };
    return {
      services: store('services'),
      nodes: store('nodes'),
      identities: store('identities'),
      ipcache: store('ipcache'),
    };
  }

  private queue(name: string, handler: KeyHandler): WorkQueue {
    return new WorkQueue({
      name,
      handler,
      logger: this.opts.logger.child({ queue: name }),
      onError: () => this.metrics.errors.inc({ kind: `reconcile:${name}` }),
      onHandled: (_key, waitedMs) => this.metrics.syncLatency.observe({ queue: name }, waitedMs / 1000),
    });
  }

  /** Readers judge liveness by this key changing; a failed write is retried at the next tick. */
  private startHeartbeat(client: Etcd3): NodeJS.Timeout {
    const beat = () =>
      client
        .put(HEARTBEAT_KEY)
        .value(encodeTimestamp())
        .exec()
        .catch((err: unknown) => {
          this.metrics.errors.inc({ kind: 'heartbeat' });
          this.opts.logger.warn(`heartbeat write failed: ${errorMessage(err)}`);
        });
    void beat();
    return setInterval(beat, this.opts.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS);
  }
}
