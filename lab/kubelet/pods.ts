/**
 * From a pod's container to the process the lab kubelet starts: argv (image catalog + `$(VAR)`
 * expansion), environment and mounts. Pure.
 */
import { posix } from 'node:path';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { type ObjectLookup, type PodFacts, containerEnv, expandedInvocation } from './env.js';
import { type ImageCatalog, imageRun } from './images.js';
import type { MountRequest } from './mounts.js';

export interface ProcessSpec {
  argv: string[];
  env: Record<string, string>;
  workingDir: string;
  mounts: MountRequest[];
}

/** Why a container cannot start: its waiting reason (and the Pod event's). */
export type ProcessSpecResult =
  | { ok: true; value: ProcessSpec }
  | { ok: false; reason: 'ImageNotRunnable' | 'CreateContainerConfigError'; message: string };

/** A volume as seen from the host: a directory, or (hostPath) whatever is at that path. */
export interface VolumeOnHost {
  path: string;
  file: boolean;
}

export interface NodeContext {
  catalog: ImageCatalog;
  /** `<cluster>`, for the echo image's default identity */
  clusterName: string;
  /** the API server's real address: the lab has no kube-proxy, so the `kubernetes` Service's ClusterIP would lead nowhere */
  apiServer: { host: string; port: number };
  /** the image's environment (PATH to node, sh, mount) */
  baseEnv: Record<string, string>;
}

/** What in-cluster clients read (client-node's loadFromCluster, client-go's rest.InClusterConfig). */
export function serviceEnv(apiServer: { host: string; port: number }): Record<string, string> {
  const host = apiServer.host.includes(':') ? `[${apiServer.host}]` : apiServer.host;
  return {
    KUBERNETES_SERVICE_HOST: apiServer.host,
    KUBERNETES_SERVICE_PORT: String(apiServer.port),
    KUBERNETES_SERVICE_PORT_HTTPS: String(apiServer.port),
    KUBERNETES_PORT: `tcp://${host}:${apiServer.port}`,
  };
}

export function containerMounts(
  container: V1Container,
  volumes: ReadonlyMap<string, VolumeOnHost>,
): { ok: true; value: MountRequest[] } | { ok: false; message: string } {
  const mounts: MountRequest[] = [];
  for (const m of container.volumeMounts ?? []) {
    const volume = volumes.get(m.name);
    if (!volume) return { ok: false, message: `volumeMount ${m.name}: the pod has no volume ${m.name}` };
    const subPath = m.subPath ? posix.normalize(m.subPath) : '';
    if (subPath.startsWith('..') || posix.isAbsolute(subPath)) {
      return { ok: false, message: `volumeMount ${m.name}: subPath ${m.subPath} must stay inside the volume` };
    }
    mounts.push({
      source: subPath ? posix.join(volume.path, subPath) : volume.path,
      target: m.mountPath,
      readOnly: m.readOnly ?? false,
      file: subPath ? false : volume.file,
    });
  }
  return { ok: true, value: mounts };
}

export function processSpec(
  pod: V1Pod,
  container: V1Container,
  facts: PodFacts,
  lookup: ObjectLookup,
  volumes: ReadonlyMap<string, VolumeOnHost>,
  node: NodeContext,
): ProcessSpecResult {
  const env = containerEnv(pod, container, facts, lookup, serviceEnv(node.apiServer));
  if (!env.ok) return { ok: false, reason: 'CreateContainerConfigError', message: env.message };
  const run = imageRun(
    {
      image: container.image ?? '',
      ...expandedInvocation(container, env.value),
      workingDir: container.workingDir,
      echoIdentity: `${node.clusterName}/${pod.metadata?.name}`,
    },
    node.catalog,
  );
  if (!run.runnable) return { ok: false, reason: run.reason, message: run.message };
  const mounts = containerMounts(container, volumes);
  if (!mounts.ok) return { ok: false, reason: 'CreateContainerConfigError', message: mounts.message };
  const hostname = pod.spec?.hostNetwork ? (pod.spec.nodeName ?? '') : (pod.metadata?.name ?? '');
  return {
    ok: true,
    value: {
      argv: run.argv,
      env: { ...node.baseEnv, HOSTNAME: hostname, ...Object.fromEntries(env.value) },
      workingDir: run.workingDir,
      mounts: [...run.binds.map((b) => ({ ...b, file: false })), ...mounts.value],
    },
  };
}

/** The lowest pod address number (podAddresses' n ≥ 1) no living pod of this node holds. */
export function lowestFreeIndex(used: ReadonlySet<number>): number {
  let n = 1;
  while (used.has(n)) n++;
  return n;
}
