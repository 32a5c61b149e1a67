/**
 * Informers on the local Kubernetes API (Services, EndpointSlices, Namespaces, ServiceExports,
 * Nodes): the I/O around view.ts. A failed watch is restarted with a capped backoff; the caches
 * keep their last content meanwhile, so an API server restart never empties the datapath.
 */
import type {
  KubeConfig,
  KubernetesObject,
  V1EndpointSlice,
  V1Namespace,
  V1Node,
  V1Service,
} from '@kubernetes/client-node';
import { Counter, type Registry } from 'prom-client';
import { ResourceInformer } from '../../lib/k8s/informer.js';
import {
  LocalAddressTracker,
  NO_CONFIGURED_CIDRS,
  localPodCidrs,
  type ConfiguredCidrs,
} from '../../lib/k8s/local-addresses.js';
import type { LocalAddresses } from '../../lib/kvstore/ownership.js';
import { clusterResources, type ResourceSource } from '../../lib/k8s/resources.js';
import type { Logger } from '../../lib/log.js';
import type { LocalService } from '../merge/types.js';
import { annotationProblem, buildLocalServices } from './view.js';

/** What the controller needs from the local cluster (a fake implements it in unit tests). */
export interface LocalViewSource {
  synced(): boolean;
  services(): LocalService[];
  podCidrs(): string[];
  onChange(listener: () => void): () => void;
}

export interface LocalInformersOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  metrics: Registry;
  /** the cluster-wide pod and service ranges (agent flags; absent: none configured) */
  cidrs?: ConfiguredCidrs;
  /** first restart delay after a failed list/watch; doubles up to 30 s (default 500 ms) */
  retryDelayMs?: number;
}

const MAX_RETRY_DELAY_MS = 30_000;

type Resource = 'services' | 'endpointslices' | 'namespaces' | 'serviceexports' | 'nodes';

interface Watched<T extends KubernetesObject> {
  resource: Resource;
  informer: ResourceInformer<T>;
}

export class LocalInformers implements LocalViewSource {
  private readonly listeners = new Set<() => void>();
  private readonly serviceWatch: Watched<V1Service>;
  private readonly slices: Watched<V1EndpointSlice>;
  private readonly namespaces: Watched<V1Namespace>;
  private readonly exports: Watched<KubernetesObject>;
  private readonly nodes: Watched<V1Node>;
  private readonly rejected: Counter<'kind'>;
  private readonly watchErrors: Counter<'resource'>;
  private stopped = false;
  private readonly addresses: LocalAddressTracker;

  constructor(private readonly options: LocalInformersOptions) {
    const resources = clusterResources(options.kubeConfig);
    this.serviceWatch = this.watched('services', resources.services);
    this.slices = this.watched('endpointslices', resources.endpointSlices);
    this.namespaces = this.watched('namespaces', resources.namespaces);
    this.nodes = this.watched('nodes', resources.nodes);
    this.exports = this.watched('serviceexports', resources.serviceExports);
    this.rejected = new Counter({
      name: 'clustermesh_agent_local_rejected_objects_total',
      help: 'Local Services/Namespaces with a malformed clustermesh annotation (treated as not global)',
      labelNames: ['kind'],
      registers: [options.metrics],
    });
    this.watchErrors = new Counter({
      name: 'clustermesh_agent_local_watch_errors_total',
      help: 'Failed list/watch calls on the local Kubernetes API, per resource',
      labelNames: ['resource'],
      registers: [options.metrics],
    });
    this.checkAnnotations('Service', this.serviceWatch.informer);
    this.checkAnnotations('Namespace', this.namespaces.informer);
    this.addresses = new LocalAddressTracker(
      { synced: () => this.synced(), nodes: () => this.nodes.informer.list(), services: () => this.serviceWatch.informer.list() },
      options.cidrs ?? NO_CONFIGURED_CIDRS,
    );
  }

  /** Resolves once every informer has listed once (or, for ServiceExports, found the CRD absent). */
  async start(): Promise<void> {
    await Promise.all(this.all().map((w) => w.informer.start()));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.all().map((w) => w.informer.stop()));
    this.listeners.clear();
  }

  synced(): boolean {
    return this.all().every((w) => w.informer.isSynced);
  }

  services(): LocalService[] {
    return buildLocalServices({
      services: this.serviceWatch.informer.list(),
      endpointSlices: this.slices.informer.list(),
      namespaces: this.namespaces.informer.list(),
      serviceExports: new Set(
        this.exports.informer.list().map((e) => `${e.metadata?.namespace ?? ''}/${e.metadata?.name ?? ''}`),
      ),
    });
  }

  podCidrs(): string[] {
    return localPodCidrs(this.nodes.informer.list());
  }

  /** What no peer may publish; null until every informer synced (lib/k8s/local-addresses.ts). */
  localAddresses(): LocalAddresses | null {
    return this.addresses.current();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private all(): Watched<KubernetesObject>[] {
    return [this.serviceWatch, this.slices, this.namespaces, this.exports, this.nodes] as Watched<KubernetesObject>[];
  }

  private watched<T extends KubernetesObject>(resource: Resource, source: ResourceSource<T>): Watched<T> {
    const w: Watched<T> = {
      resource,
      informer: new ResourceInformer<T>({
        ...source,
        kubeConfig: this.options.kubeConfig,
        backoff: { minMs: this.options.retryDelayMs ?? 500, maxMs: MAX_RETRY_DELAY_MS },
        ...(resource === 'serviceexports'
          ? {
              optional: {
                onAbsent: () => {
                  this.options.log.info('no ServiceExport resource in this cluster: MCS exports ignored');
                  this.changed();
                },
              },
            }
          : {}),
        onError: (err, { delayMs }) => this.failed(w as unknown as Watched<KubernetesObject>, err, delayMs),
      }),
    };
    w.informer.onChange(() => this.changed());
    void w.informer.synced.then(() => this.markSynced(w as unknown as Watched<KubernetesObject>));
    return w;
  }

  private markSynced(w: Watched<KubernetesObject>): void {
    if (this.stopped) return;
    this.options.log.info({ resource: w.resource }, 'local informer synced');
    this.changed();
  }

  /** Logs and counts a failed list/watch; returns the restart delay when it is not the backoff's. */
  private failed(w: Watched<KubernetesObject>, err: unknown, retryInMs: number): number | undefined {
    this.watchErrors.inc({ resource: w.resource });
    this.options.log.warn({ resource: w.resource, err: String(err), retryInMs }, 'local list/watch failed');
    return undefined;
  }

  private checkAnnotations(kind: 'Service' | 'Namespace', informer: ResourceInformer<KubernetesObject>): void {
    const check = (obj: KubernetesObject): void => {
      const problem = annotationProblem(kind, obj.metadata?.annotations);
      if (problem === null) return;
      this.rejected.inc({ kind });
      this.options.log.warn(
        { kind, namespace: obj.metadata?.namespace, name: obj.metadata?.name, problem },
        `${kind} annotation rejected: treated as not global`,
      );
    };
    informer.on({ upsert: check });
  }

  private changed(): void {
    this.addresses.changed();
    for (const listener of this.listeners) listener();
  }
}
