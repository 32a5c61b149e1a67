/**
 * The local cluster's addresses as the kvstoremesh learns them, the way the agent does
 * (agent/local/informers.ts): Node and Service informers plus the configured cluster-wide ranges
 * (lib/k8s/local-addresses.ts). A failed list/watch is logged, counted and restarted with
 * backoff; the caches keep their last content meanwhile.
 */
import type { KubeConfig, KubernetesObject, V1Node, V1Service } from '@kubernetes/client-node';
import { Counter, type Registry } from 'prom-client';
import { ResourceInformer } from '../../lib/k8s/informer.js';
import { LocalAddressTracker, type ConfiguredCidrs } from '../../lib/k8s/local-addresses.js';
import { clusterResources, type ResourceSource } from '../../lib/k8s/resources.js';
import type { LocalAddresses } from '../../lib/kvstore/ownership.js';
import type { Logger } from '../../lib/log.js';
import type { LocalAddressSource } from './kvstoremesh.js';

export interface LocalClusterOptions {
  kubeConfig: KubeConfig;
  cidrs: ConfiguredCidrs;
  log: Logger;
  registry: Registry;
  /** first restart delay after a failed list/watch; doubles up to 30 s (default 500 ms) */
  retryDelayMs?: number;
}

export class LocalCluster implements LocalAddressSource {
  private readonly nodes: ResourceInformer<V1Node>;
  private readonly services: ResourceInformer<V1Service>;
  private readonly addresses: LocalAddressTracker;
  private readonly listeners = new Set<() => void>();
  private readonly watchErrors: Counter<'resource'>;
  private stopped = false;

  constructor(private readonly opts: LocalClusterOptions) {
    this.watchErrors = new Counter({
      name: 'clustermesh_kvstoremesh_local_watch_errors_total',
      help: 'Failed list/watch calls on the local Kubernetes API (Nodes, Services), per resource',
      labelNames: ['resource'],
      registers: [opts.registry],
    });
    const resources = clusterResources(opts.kubeConfig);
    this.nodes = this.informer('nodes', resources.nodes);
    this.services = this.informer('services', resources.services);
    this.addresses = new LocalAddressTracker(
      {
        synced: () => this.nodes.isSynced && this.services.isSynced,
        nodes: () => this.nodes.list(),
        services: () => this.services.list(),
      },
      opts.cidrs,
    );
  }

  /** Resolves after each informer's first attempt (synced, or a restart scheduled). */
  async start(): Promise<void> {
    await Promise.all([this.nodes.start(), this.services.start()]);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.listeners.clear();
    await Promise.all([this.nodes.stop(), this.services.stop()]);
  }

  current(): LocalAddresses | null {
    return this.addresses.current();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private informer<T extends KubernetesObject>(
    resource: 'nodes' | 'services',
    source: ResourceSource<T>,
  ): ResourceInformer<T> {
    const informer = new ResourceInformer<T>({
      ...source,
      kubeConfig: this.opts.kubeConfig,
      backoff: { minMs: this.opts.retryDelayMs ?? 500, maxMs: 30_000 },
      onError: (err, { delayMs }) => {
        this.watchErrors.inc({ resource });
        this.opts.log.warn({ resource, err: String(err), retryInMs: delayMs }, 'local list/watch failed');
      },
    });
    informer.onChange(() => this.changed());
    void informer.synced.then(() => this.changed());
    return informer;
  }

  private changed(): void {
    if (this.stopped) return;
    this.addresses.changed();
    for (const listener of this.listeners) listener();
  }
}
