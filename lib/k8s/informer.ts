/**
 * A client-node informer (list + watch + cache) with what client-node leaves out: restarts after
 * an error (its ListWatch stops on one and never restarts by itself), with capped exponential
 * backoff, and a `synced` promise. The cache keeps its last content while restarting, so an API
 * server restart never empties what the daemons built from it.
 */
import {
  ApiException,
  ListWatch,
  Watch,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { apiRequest, errorBody } from './rest.js';

const DEFAULT_MAX_BACKOFF_MS = 30_000;

/** The HTTP status of a failed list (client-node's ApiException) or watch. */
export function statusCode(err: unknown): number | undefined {
  const e = err as { code?: number; statusCode?: number } | undefined;
  return e?.code ?? e?.statusCode;
}

export type ListFn<T extends KubernetesObject> = () => Promise<KubernetesListObject<T>>;

/**
 * Lists a collection as the API server sends it, parsed JSON and nothing more: the same plain
 * objects the watch delivers (client-node parses watch events without its ObjectSerializer).
 * client-node's typed list calls run every listed object through that serializer, which walks the
 * whole type model: at 10k Services and EndpointSlices it was most of the clustermesh-apiserver's
 * CPU during its initial sync (bench/apiserver.ts). Every field has the typed objects' name and
 * value, except that timestamps stay RFC 3339 strings, as in watch events. The request asks for no
 * compression (loopback or a cluster network: gzip only costs both ends CPU). A failed list
 * throws client-node's ApiException with the HTTP status as `code`, as the typed calls do.
 */
export async function listJson<T extends KubernetesObject>(
  kubeConfig: KubeConfig,
  path: string,
  fieldSelector?: string,
): Promise<KubernetesListObject<T>> {
  const query = fieldSelector === undefined ? '' : `?${new URLSearchParams({ fieldSelector })}`;
  const answer = await apiRequest(kubeConfig, { method: 'GET', path: path + query, headers: { Accept: 'application/json' } });
  if (answer.status !== 200) {
    const { body, message } = errorBody(answer.body);
    throw new ApiException(answer.status, message ?? `listing ${path} failed`, body, answer.headers as Record<string, string>);
  }
  return JSON.parse(answer.body) as KubernetesListObject<T>;
}

export interface InformerHandlers<T> {
  /** add or update: the cache already holds `obj` */
  upsert(obj: T): void;
  /** the cache no longer holds `obj` */
  delete?(obj: T): void;
}

export interface RestartBackoff {
  /** the first delay (default 200 ms); it doubles with each failure in a row */
  minMs?: number;
  /** the largest delay (default 30 s) */
  maxMs?: number;
  /** each delay times a random 0.5..1, so that many restarting clients spread out */
  jitter?: boolean;
}

export interface ResourceInformerOptions<T extends KubernetesObject> {
  kubeConfig: KubeConfig;
  /** the collection's API path, e.g. `/api/v1/services` */
  path: string;
  list: ListFn<T>;
  /** for the watch; `list` must apply the same one */
  fieldSelector?: string;
  backoff?: RestartBackoff;
  /**
   * The cluster may not serve this collection (a CRD that is not installed): a 404 makes it
   * absent — synced and empty, `onAbsent` told once — and it is looked for again every
   * `backoff.maxMs`, so installing the CRD later is noticed without a restart.
   */
  optional?: { onAbsent(): void };
  /**
   * Told of each failed list or watch (to log or count it) before the restart is scheduled
   * `delayMs` later; returning a number schedules it that much later instead.
   */
  onError(err: unknown, restart: { attempt: number; delayMs: number }): number | void;
}

export class ResourceInformer<T extends KubernetesObject> {
  private readonly listWatch: ListWatch<T>;
  private listedAndWatching = false;
  private absent = false;
  private stopped = false;
  /** failed attempts since the last start that listed (if needed) and got its watch going */
  private failures = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private resolveSynced!: () => void;
  /** resolves once the first list is in the cache, its add events were delivered and the watch runs */
  readonly synced = new Promise<void>((resolve) => (this.resolveSynced = resolve));

  constructor(private readonly opts: ResourceInformerOptions<T>) {
    // What makeInformer builds, plus the field selector makeInformer cannot pass.
    this.listWatch = new ListWatch(
      opts.path,
      new Watch(opts.kubeConfig),
      opts.list,
      false,
      undefined,
      opts.fieldSelector,
    );
    this.listWatch.on('error', (err: unknown) => this.restartAfterError(err));
  }

  /** `synced` has resolved: listed and watching, or an optional collection found not served */
  get isSynced(): boolean {
    return this.listedAndWatching || this.absent;
  }

  /**
   * Handlers added once the cache holds objects are first given an upsert of each (as client-go's
   * AddEventHandler does), so an informer may start listing before its consumers exist.
   */
  on(handlers: InformerHandlers<T>): void {
    for (const obj of this.listWatch.list()) handlers.upsert(obj);
    this.listWatch.on('add', handlers.upsert);
    this.listWatch.on('update', handlers.upsert);
    if (handlers.delete) this.listWatch.on('delete', handlers.delete);
  }

  /** `listener` runs after every add, update and delete. */
  onChange(listener: (obj: T) => void): void {
    this.listWatch.on('change', listener);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.listWatch.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.listWatch.list(namespace);
  }

  /** Resolves after the first attempt: synced, or failed with a restart scheduled. */
  start(): Promise<void> {
    return this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    await this.listWatch.stop();
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    try {
      // Resolves once listed and watching; a failed list is reported through 'error' instead.
      await this.listWatch.start();
    } catch (err) {
      this.restartAfterError(err);
      return;
    }
    if (this.restartTimer || this.stopped) return;
    this.failures = 0;
    this.absent = false;
    this.listedAndWatching = true;
    this.resolveSynced();
  }

  private restartAfterError(err: unknown): void {
    if (this.stopped || this.restartTimer) return;
    let delayMs: number;
    if (this.opts.optional && statusCode(err) === 404) {
      if (!this.absent) this.opts.optional.onAbsent();
      this.absent = true;
      this.resolveSynced();
      delayMs = this.opts.backoff?.maxMs ?? DEFAULT_MAX_BACKOFF_MS;
    } else {
      this.failures++;
      const backoffMs = this.backoffMs();
      delayMs = this.opts.onError(err, { attempt: this.failures, delayMs: backoffMs }) ?? backoffMs;
    }
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      void this.run();
    }, delayMs);
  }

  private backoffMs(): number {
    const { minMs = 200, maxMs = DEFAULT_MAX_BACKOFF_MS, jitter = false } = this.opts.backoff ?? {};
    const delayMs = Math.min(minMs * 2 ** (this.failures - 1), maxMs);
    return jitter ? delayMs * (0.5 + Math.random() / 2) : delayMs;
  }
}
