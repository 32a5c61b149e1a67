/**
 * Informers on the local Kubernetes API (Services, EndpointSlices, Namespaces, ServiceExports,
 * Nodes): the I/O around view.ts. A failed watch is restarted with a capped backoff; the caches
 * keep their last content meanwhile, so an API server restart never empties the datapath.
 */
import {
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  makeInformer,
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
  type V1EndpointSlice,
  type V1Namespace,
  type V1Node,
  type V1Service,
} from '@kubernetes/client-node';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../lib/log.js';
import type { LocalService } from '../merge/types.js';
import { annotationProblem, buildLocalServices, localPodCidrs } from './view.js';

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
  /** first restart delay after a failed list/watch; doubles up to 30 s (default 500 ms) */
  retryDelayMs?: number;
}

const MCS = { group: 'multicluster.x-k8s.io', version: 'v1alpha1', plural: 'serviceexports' };
const MAX_RETRY_DELAY_MS = 30_000;

type Resource = 'services' | 'endpointslices' | 'namespaces' | 'serviceexports' | 'nodes';

interface Watched<T extends KubernetesObject> {
  resource: Resource;
  informer: Informer<T> & ObjectCache<T>;
  synced: boolean;
  retryDelayMs: number;
  timer?: NodeJS.Timeout;
}

function statusCode(err: unknown): number | undefined {
  const e = err as { code?: number; statusCode?: number } | undefined;
  return e?.code ?? e?.statusCode;
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

  constructor(private readonly options: LocalInformersOptions) {
    const kc = options.kubeConfig;
    const core = kc.makeApiClient(CoreV1Api);
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    this.serviceWatch = this.watched('services', '/api/v1/services', () => core.listServiceForAllNamespaces({}));
    this.slices = this.watched('endpointslices', '/apis/discovery.k8s.io/v1/endpointslices', () =>
      discovery.listEndpointSliceForAllNamespaces({}),
    );
    this.namespaces = this.watched('namespaces', '/api/v1/namespaces', () => core.listNamespace({}));
    this.nodes = this.watched('nodes', '/api/v1/nodes', () => core.listNode({}));
    this.exports = this.watched(
      'serviceexports',
      `/apis/${MCS.group}/${MCS.version}/${MCS.plural}`,
      () => custom.listClusterCustomObject(MCS) as Promise<KubernetesListObject<KubernetesObject>>,
    );
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
  }

  /** Resolves once every informer has listed once (or, for ServiceExports, found the CRD absent). */
  async start(): Promise<void> {
    await Promise.all(this.all().map((w) => this.startOne(w)));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const w of this.all()) clearTimeout(w.timer);
    await Promise.all(this.all().map((w) => w.informer.stop()));
    this.listeners.clear();
  }

  synced(): boolean {
    return this.all().every((w) => w.synced);
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

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private all(): Watched<KubernetesObject>[] {
    return [this.serviceWatch, this.slices, this.namespaces, this.exports, this.nodes] as Watched<KubernetesObject>[];
  }

  private watched<T extends KubernetesObject>(
    resource: Resource,
    path: string,
    list: () => Promise<KubernetesListObject<T>>,
  ): Watched<T> {
    const informer = makeInformer<T>(this.options.kubeConfig, path, list);
    const w: Watched<T> = { resource, informer, synced: false, retryDelayMs: this.initialDelay() };
    informer.on('change', () => this.changed());
    informer.on('error', (err) => this.failed(w as unknown as Watched<KubernetesObject>, err));
    return w;
  }

  private initialDelay(): number {
    return this.options.retryDelayMs ?? 500;
  }

  private async startOne(w: Watched<KubernetesObject>): Promise<void> {
    try {
      await w.informer.start();
      // start() resolves after the list (the watch then runs on); a failed list reports through 'error'.
      if (w.timer === undefined && !this.stopped) this.markSynced(w);
    } catch (err) {
      this.failed(w, err);
    }
  }

  private markSynced(w: Watched<KubernetesObject>): void {
    w.retryDelayMs = this.initialDelay();
    if (w.synced) return;
    w.synced = true;
    this.options.log.info({ resource: w.resource }, 'local informer synced');
    this.changed();
  }

  private failed(w: Watched<KubernetesObject>, err: unknown): void {
    if (this.stopped || w.timer !== undefined) return;
    const absentCrd = w.resource === 'serviceexports' && statusCode(err) === 404;
    if (absentCrd) {
      // No MCS CRD in this cluster: nothing is exported that way; look again later.
      if (!w.synced) this.options.log.info('no ServiceExport resource in this cluster: MCS exports ignored');
      w.synced = true;
      this.changed();
    } else {
      this.watchErrors.inc({ resource: w.resource });
      this.options.log.warn({ resource: w.resource, err: String(err), retryInMs: w.retryDelayMs }, 'local list/watch failed');
    }
    const delay = absentCrd ? MAX_RETRY_DELAY_MS : w.retryDelayMs;
    w.retryDelayMs = Math.min(w.retryDelayMs * 2, MAX_RETRY_DELAY_MS);
    w.timer = setTimeout(() => {
      w.timer = undefined;
      void this.startOne(w);
    }, delay);
  }

  private checkAnnotations(kind: 'Service' | 'Namespace', informer: Informer<KubernetesObject>): void {
    const check = (obj: KubernetesObject): void => {
      const problem = annotationProblem(kind, obj.metadata?.annotations);
      if (problem === null) return;
      this.rejected.inc({ kind });
      this.options.log.warn(
        { kind, namespace: obj.metadata?.namespace, name: obj.metadata?.name, problem },
        `${kind} annotation rejected: treated as not global`,
      );
    };
    informer.on('add', check);
    informer.on('update', check);
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}
