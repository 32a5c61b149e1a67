/**
 * The Secrets and ConfigMaps the node's pods refer to, each watched by name (what the Node
 * authorizer lets a kubelet watch), shared between pods and dropped when no pod refers to it.
 */
import { CoreV1Api, type KubeConfig, type V1ConfigMap, type V1Secret } from '@kubernetes/client-node';
import { ResourceInformer } from '../../lib/k8s/informer.js';
import type { ObjectLookup } from './env.js';

type Kind = 'secret' | 'configMap';
type Watched = ResourceInformer<V1Secret> | ResourceInformer<V1ConfigMap>;

/** How long a pod waits for its objects' first list before it starts with what is there. */
const FIRST_LIST_WAIT_MS = 10_000;

function decode(kind: Kind, obj: V1Secret | V1ConfigMap | undefined): Record<string, string> | undefined {
  if (!obj) return undefined;
  if (kind === 'secret') {
    return Object.fromEntries(Object.entries((obj as V1Secret).data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  }
  const cm = obj as V1ConfigMap;
  return {
    ...cm.data,
    ...Object.fromEntries(Object.entries(cm.binaryData ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')])),
  };
}

export class ObjectCache implements ObjectLookup {
  private readonly watched = new Map<string, { informer: Watched; users: number }>();
  private readonly core: CoreV1Api;
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly kc: KubeConfig,
    private readonly onError: (what: string, err: unknown) => void,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
  }

  /** Starts watching (or counts one more user of) each object; resolves once each was listed or after a bound. */
  async acquire(namespace: string, refs: Array<{ kind: Kind; name: string }>): Promise<void> {
    const synced = refs.map((ref) => {
      const key = `${ref.kind}/${namespace}/${ref.name}`;
      const existing = this.watched.get(key);
      if (existing) {
        existing.users++;
        return existing.informer.synced;
      }
      const fieldSelector = `metadata.name=${ref.name}`;
      const onError = (err: unknown) => this.onError(`watch ${key}`, err);
      const informer =
        ref.kind === 'secret'
          ? new ResourceInformer<V1Secret>({
              kubeConfig: this.kc,
              path: `/api/v1/namespaces/${namespace}/secrets`,
              fieldSelector,
              list: () => this.core.listNamespacedSecret({ namespace, fieldSelector }),
              onError,
            })
          : new ResourceInformer<V1ConfigMap>({
              kubeConfig: this.kc,
              path: `/api/v1/namespaces/${namespace}/configmaps`,
              fieldSelector,
              list: () => this.core.listNamespacedConfigMap({ namespace, fieldSelector }),
              onError,
            });
      (informer as ResourceInformer<V1Secret>).onChange(() => this.listeners.forEach((l) => l()));
      this.watched.set(key, { informer, users: 1 });
      void informer.start();
      return informer.synced;
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(synced), new Promise((resolve) => (timer = setTimeout(resolve, FIRST_LIST_WAIT_MS)))]);
    clearTimeout(timer);
  }

  release(namespace: string, refs: Array<{ kind: Kind; name: string }>): void {
    for (const ref of refs) {
      const key = `${ref.kind}/${namespace}/${ref.name}`;
      const entry = this.watched.get(key);
      if (!entry || --entry.users > 0) continue;
      this.watched.delete(key);
      void entry.informer.stop();
    }
  }

  /** `listener` runs after any watched object changes. Returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  secret(namespace: string, name: string): Record<string, string> | undefined {
    return this.lookup('secret', namespace, name);
  }

  configMap(namespace: string, name: string): Record<string, string> | undefined {
    return this.lookup('configMap', namespace, name);
  }

  private lookup(kind: Kind, namespace: string, name: string): Record<string, string> | undefined {
    const entry = this.watched.get(`${kind}/${namespace}/${name}`);
    return decode(kind, entry?.informer.get(name, namespace) as V1Secret | V1ConfigMap | undefined);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.watched.values()].map((w) => w.informer.stop()));
    this.watched.clear();
  }
}
