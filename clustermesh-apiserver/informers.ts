/**
 * client-node informers (list + watch + cache) for the kinds the daemon reads, with what
 * client-node leaves out: a `synced` promise (the first list is in the cache and its events were
 * delivered), and restarts with backoff after an error, which client-node does not do by itself.
 */
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  ListWatch,
  Watch,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type V1EndpointSlice,
  type V1Namespace,
  type V1Node,
  type V1Pod,
  type V1Secret,
  type V1Service,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { errorMessage } from '../lib/errors.js';

export type ListFn<T extends KubernetesObject> = () => Promise<KubernetesListObject<T>>;

export interface InformerHandlers<T> {
  /** add or update: the cache already holds `obj` */
  upsert(obj: T): void;
  /** the cache no longer holds `obj` */
  delete(obj: T): void;
}

export interface ResourceInformerOptions<T extends KubernetesObject> {
  kind: string;
  kubeConfig: KubeConfig;
  path: string;
  list: ListFn<T>;
  fieldSelector?: string;
  logger: Logger;
  onError?: (kind: string, err: unknown) => void;
  restartMinMs?: number;
  restartMaxMs?: number;
}

export class ResourceInformer<T extends KubernetesObject> {
  private readonly listWatch: ListWatch<T>;
  private listed = false;
  private stopped = false;
  private failures = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private resolveSynced!: () => void;
  /** resolves once the first list is in the cache and its add events were delivered */
  readonly synced = new Promise<void>((resolve) => (this.resolveSynced = resolve));

  constructor(private readonly opts: ResourceInformerOptions<T>) {
    const list: ListFn<T> = async () => {
      const result = await opts.list();
      this.listed = true;
      this.failures = 0;
      return result;
    };
    // What makeInformer builds, plus the field selector makeInformer cannot pass.
    this.listWatch = new ListWatch(
      opts.path,
      new Watch(opts.kubeConfig),
      list,
      false,
      undefined,
      opts.fieldSelector,
    );
    this.listWatch.on('error', (err: unknown) => this.restartAfterError(err));
  }

  get isSynced(): boolean {
    return this.listed;
  }

  on(handlers: InformerHandlers<T>): void {
    this.listWatch.on('add', handlers.upsert);
    this.listWatch.on('update', handlers.upsert);
    this.listWatch.on('delete', handlers.delete);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.listWatch.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.listWatch.list(namespace);
  }

  start(): void {
    void this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    await this.listWatch.stop();
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.listWatch.start();
    } catch (err) {
      this.restartAfterError(err);
      return;
    }
    if (this.listed) this.resolveSynced();
  }

  private restartAfterError(err: unknown): void {
    if (this.stopped || this.restartTimer) return;
    this.failures++;
    this.opts.onError?.(this.opts.kind, err);
    const min = this.opts.restartMinMs ?? 200;
    const delayMs = Math.min(min * 2 ** (this.failures - 1), this.opts.restartMaxMs ?? 30_000);
    this.opts.logger.warn(
      { kind: this.opts.kind, attempt: this.failures, retryInMs: delayMs },
      `watching ${this.opts.kind} failed, retrying: ${describeError(err)}`,
    );
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      void this.run();
    }, delayMs);
  }
}

function describeError(err: unknown): string {
  if (err instanceof ApiException) return `HTTP ${err.code}`;
  return errorMessage(err).split('\n')[0] ?? '';
}

/** A resource that the cluster may not serve (a CRD not installed) lists as empty until it is. */
function emptyWhenNotServed<T extends KubernetesObject>(list: ListFn<T>): ListFn<T> {
  return async () => {
    try {
      return await list();
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return { items: [], metadata: {} };
      throw err;
    }
  };
}

export const SERVICE_EXPORT = {
  group: 'multicluster.x-k8s.io',
  version: 'v1alpha1',
  plural: 'serviceexports',
} as const;

export type ServiceExport = KubernetesObject;

export interface ClusterInformers {
  services: ResourceInformer<V1Service>;
  endpointSlices: ResourceInformer<V1EndpointSlice>;
  nodes: ResourceInformer<V1Node>;
  pods: ResourceInformer<V1Pod>;
  namespaces: ResourceInformer<V1Namespace>;
  serviceExports: ResourceInformer<ServiceExport>;
  remotesSecret: ResourceInformer<V1Secret>;
}

export interface InformerContext {
  kubeConfig: KubeConfig;
  logger: Logger;
  onError?: (kind: string, err: unknown) => void;
  /** the namespace of the remotes Secret */
  namespace: string;
  remotesSecretName: string;
}

/** One informer per kind the daemon reads (not started). */
export function createInformers(ctx: InformerContext): ClusterInformers {
  const core = ctx.kubeConfig.makeApiClient(CoreV1Api);
  const discovery = ctx.kubeConfig.makeApiClient(DiscoveryV1Api);
  const custom = ctx.kubeConfig.makeApiClient(CustomObjectsApi);
  const make = <T extends KubernetesObject>(
    kind: string,
    path: string,
    list: ListFn<T>,
    fieldSelector?: string,
  ) =>
    new ResourceInformer<T>({
      kind,
      path,
      list,
      fieldSelector,
      kubeConfig: ctx.kubeConfig,
      logger: ctx.logger,
      onError: ctx.onError,
    });
  const secretSelector = `metadata.name=${ctx.remotesSecretName}`;
  const { group, version, plural } = SERVICE_EXPORT;
  return {
    services: make('Service', '/api/v1/services', () => core.listServiceForAllNamespaces()),
    endpointSlices: make('EndpointSlice', '/apis/discovery.k8s.io/v1/endpointslices', () =>
      discovery.listEndpointSliceForAllNamespaces(),
    ),
    nodes: make('Node', '/api/v1/nodes', () => core.listNode()),
    pods: make('Pod', '/api/v1/pods', () => core.listPodForAllNamespaces()),
    namespaces: make('Namespace', '/api/v1/namespaces', () => core.listNamespace()),
    serviceExports: make(
      'ServiceExport',
      `/apis/${group}/${version}/${plural}`,
      emptyWhenNotServed(
        () =>
          custom.listClusterCustomObject({ group, version, plural }) as Promise<
            KubernetesListObject<ServiceExport>
          >,
      ),
    ),
    remotesSecret: make(
      'Secret',
      `/api/v1/namespaces/${ctx.namespace}/secrets`,
      () => core.listNamespacedSecret({ namespace: ctx.namespace, fieldSelector: secretSelector }),
      secretSelector,
    ),
  };
}
