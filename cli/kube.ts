/**
 * The CLI's door to a cluster's Kubernetes API: a context's clients, and the few object operations
 * every command needs (read-or-undefined, create-or-replace, merge patch, delete-if-present), each
 * turning API and network failures into one line naming the context.
 */
import {
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
} from '@kubernetes/client-node';
import { UserError, errorMessage } from '../lib/errors.js';
import { loadKubeConfig } from '../lib/k8s/kubeconfig.js';

export const DEFAULT_NAMESPACE = 'clustermesh-system';

export interface Cluster {
  /** the context name (or "(current)") used in messages */
  context: string;
  kc: KubeConfig;
  /** the API server URL: two contexts pointing at one URL are one cluster */
  server: string;
  objects: KubernetesObjectApi;
}

export function openCluster(kubeconfig: string | undefined, context: string | undefined): Cluster {
  const kc = loadKubeConfig({ path: kubeconfig, context });
  return {
    context: context ?? kc.getCurrentContext(),
    kc,
    server: kc.getCurrentCluster()?.server ?? '',
    objects: KubernetesObjectApi.makeApiClient(kc),
  };
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

type Spec = KubernetesObject & { metadata: { name: string; namespace?: string } };

function httpCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

/** Runs one API call; anything but an expected status becomes a one-line UserError. */
export async function kubeCall<T>(cluster: Cluster, what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof UserError) throw err;
    const code = httpCode(err);
    const detail = code !== undefined ? `HTTP ${code} ${apiMessage(err)}` : networkDetail(err);
    throw new UserError(`context ${cluster.context}: cannot ${what}: ${detail}`);
  }
}

function apiMessage(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  try {
    const parsed = typeof body === 'string' ? (JSON.parse(body) as { message?: string }) : undefined;
    if (parsed?.message) return parsed.message;
  } catch {
    // not JSON
  }
  return errorMessage(err).split('\n')[0];
}

function networkDetail(err: unknown): string {
  const message = errorMessage(err).split('\n')[0];
  return `${message} (is the cluster running and the kubeconfig's server reachable?)`;
}

function specOf(ref: ObjectRef): Spec {
  return {
    apiVersion: ref.apiVersion,
    kind: ref.kind,
    metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}) },
  };
}

function describe(ref: ObjectRef): string {
  return `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`;
}

/** The object, or undefined when it does not exist. */
export async function readObject<T extends KubernetesObject>(
  cluster: Cluster,
  ref: ObjectRef,
): Promise<T | undefined> {
  return kubeCall(cluster, `read ${describe(ref)}`, async () => {
    try {
      return (await cluster.objects.read(specOf(ref))) as T;
    } catch (err) {
      if (httpCode(err) === 404) return undefined;
      throw err;
    }
  });
}

/** Creates the object or replaces the existing one (keeping its resourceVersion). */
export async function upsertObject(cluster: Cluster, object: KubernetesObject): Promise<void> {
  const ref = refOf(object);
  const existing = await readObject(cluster, ref);
  await kubeCall(cluster, `write ${describe(ref)}`, async () => {
    if (!existing) await cluster.objects.create(object);
    else
      await cluster.objects.replace({
        ...object,
        metadata: { ...object.metadata, resourceVersion: existing.metadata?.resourceVersion },
      });
  });
}

export async function mergePatchObject(
  cluster: Cluster,
  ref: ObjectRef,
  patch: { metadata?: Record<string, unknown> } & Record<string, unknown>,
): Promise<void> {
  const spec = specOf(ref);
  await kubeCall(cluster, `patch ${describe(ref)}`, () =>
    cluster.objects.patch(
      { ...patch, ...spec, metadata: { ...patch.metadata, ...spec.metadata } } as KubernetesObject,
      undefined,
      undefined,
      'clustermesh',
      undefined,
      PatchStrategy.MergePatch,
    ),
  );
}

export async function deleteObject(cluster: Cluster, ref: ObjectRef): Promise<void> {
  await kubeCall(cluster, `delete ${describe(ref)}`, async () => {
    try {
      await cluster.objects.delete(specOf(ref));
    } catch (err) {
      if (httpCode(err) !== 404) throw err;
    }
  });
}

export async function listObjects<T extends KubernetesObject>(
  cluster: Cluster,
  apiVersion: string,
  kind: string,
  namespace?: string,
  labelSelector?: string,
): Promise<T[]> {
  return kubeCall(cluster, `list ${kind}`, async () => {
    const list = await cluster.objects.list(
      apiVersion,
      kind,
      namespace,
      undefined,
      undefined,
      undefined,
      undefined,
      labelSelector,
    );
    return list.items as T[];
  });
}

export function refOf(object: KubernetesObject): ObjectRef {
  if (!object.apiVersion || !object.kind || !object.metadata?.name)
    throw new Error('object without apiVersion, kind or metadata.name');
  return {
    apiVersion: object.apiVersion,
    kind: object.kind,
    name: object.metadata.name,
    namespace: object.metadata.namespace,
  };
}

// --- Secrets and ConfigMaps carry most of clustermesh's state -------------------------------------

export function secretRef(namespace: string, name: string): ObjectRef {
  return { apiVersion: 'v1', kind: 'Secret', namespace, name };
}

export function configMapRef(namespace: string, name: string): ObjectRef {
  return { apiVersion: 'v1', kind: 'ConfigMap', namespace, name };
}

/** A Secret's data decoded to text, or undefined when the Secret does not exist. */
export async function readSecretData(
  cluster: Cluster,
  namespace: string,
  name: string,
): Promise<Record<string, string> | undefined> {
  const secret = await readObject<KubernetesObject & { data?: Record<string, string> }>(
    cluster,
    secretRef(namespace, name),
  );
  if (!secret) return undefined;
  return Object.fromEntries(
    Object.entries(secret.data ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64').toString()]),
  );
}

export function secretObject(namespace: string, name: string, data: Record<string, string>): KubernetesObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace, labels: { 'app.kubernetes.io/part-of': 'clustermesh' } },
    type: 'Opaque',
    data: Object.fromEntries(
      Object.entries(data).map(([key, value]) => [key, Buffer.from(value).toString('base64')]),
    ),
  } as KubernetesObject;
}

export async function readConfigMapData(
  cluster: Cluster,
  namespace: string,
  name: string,
): Promise<Record<string, string> | undefined> {
  const cm = await readObject<KubernetesObject & { data?: Record<string, string> }>(
    cluster,
    configMapRef(namespace, name),
  );
  return cm ? (cm.data ?? {}) : undefined;
}

export function configMapObject(namespace: string, name: string, data: Record<string, string>): KubernetesObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace, labels: { 'app.kubernetes.io/part-of': 'clustermesh' } },
    data,
  } as KubernetesObject;
}

export async function ensureNamespace(cluster: Cluster, namespace: string): Promise<void> {
  const ref = { apiVersion: 'v1', kind: 'Namespace', name: namespace };
  if (await readObject(cluster, ref)) return;
  await kubeCall(cluster, `create namespace ${namespace}`, () =>
    cluster.objects.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } }),
  );
}

/** InternalIPs of the cluster's nodes (certificate SANs, NodePort endpoints, agents' status API). */
export async function nodeInternalIPs(cluster: Cluster): Promise<Array<{ node: string; ip: string }>> {
  type Node = KubernetesObject & { status?: { addresses?: Array<{ type: string; address: string }> } };
  const nodes = await listObjects<Node>(cluster, 'v1', 'Node');
  return nodes.flatMap((node) =>
    (node.status?.addresses ?? [])
      .filter((a) => a.type === 'InternalIP')
      .map((a) => ({ node: node.metadata?.name ?? '', ip: a.address })),
  );
}
