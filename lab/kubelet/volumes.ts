/**
 * What each pod volume holds: the files of Secret, ConfigMap, downwardAPI and projected volumes
 * (including the service account token), a hostPath, or an emptyDir. Pure; lab/kubelet/runtime.ts
 * writes the files (atomically, the kubelet's `..data` symlink swap) and keeps them up to date.
 */
import type { V1KeyToPath, V1Pod, V1Volume, V1VolumeProjection } from '@kubernetes/client-node';
import { type ObjectLookup, type PodFacts, type Resolved, fieldValue } from './env.js';

export interface VolumeFile {
  path: string;
  data: string;
  mode: number;
}

export type VolumeContent =
  | { kind: 'files'; files: VolumeFile[] }
  | { kind: 'hostPath'; path: string; type: string }
  | { kind: 'emptyDir' };

export interface TokenRequestSpec {
  audience?: string;
  expirationSeconds: number;
}

export interface VolumeLookup extends ObjectLookup {
  /** a token for the pod's service account, undefined until it has been issued */
  token(spec: TokenRequestSpec): string | undefined;
}

/** The API server's default for a projected token without expirationSeconds. */
export const DEFAULT_TOKEN_SECONDS = 3600;
const DEFAULT_MODE = 0o644;

export function tokenKey(spec: TokenRequestSpec): string {
  return `${spec.audience ?? ''}|${spec.expirationSeconds}`;
}

/** Every token request the pod's volumes make (so they can be issued before the pod starts). */
export function tokenRequests(pod: V1Pod): TokenRequestSpec[] {
  return (pod.spec?.volumes ?? []).flatMap((v) =>
    (v.projected?.sources ?? [])
      .filter((s) => s.serviceAccountToken)
      .map((s) => ({
        audience: s.serviceAccountToken?.audience,
        expirationSeconds: s.serviceAccountToken?.expirationSeconds ?? DEFAULT_TOKEN_SECONDS,
      })),
  );
}

/** The Secrets and ConfigMaps the pod's volumes, env and envFrom refer to. */
export function referencedObjects(pod: V1Pod): Array<{ kind: 'secret' | 'configMap'; name: string }> {
  const refs: Array<{ kind: 'secret' | 'configMap'; name: string | undefined }> = [];
  for (const v of pod.spec?.volumes ?? []) {
    if (v.secret) refs.push({ kind: 'secret', name: v.secret.secretName });
    if (v.configMap) refs.push({ kind: 'configMap', name: v.configMap.name });
    for (const s of v.projected?.sources ?? []) {
      if (s.secret) refs.push({ kind: 'secret', name: s.secret.name });
      if (s.configMap) refs.push({ kind: 'configMap', name: s.configMap.name });
    }
  }
  for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
    for (const f of c.envFrom ?? []) {
      if (f.secretRef) refs.push({ kind: 'secret', name: f.secretRef.name });
      if (f.configMapRef) refs.push({ kind: 'configMap', name: f.configMapRef.name });
    }
    for (const e of c.env ?? []) {
      if (e.valueFrom?.secretKeyRef) refs.push({ kind: 'secret', name: e.valueFrom.secretKeyRef.name });
      if (e.valueFrom?.configMapKeyRef) refs.push({ kind: 'configMap', name: e.valueFrom.configMapKeyRef.name });
    }
  }
  const unique = new Map(refs.filter((r) => r.name).map((r) => [`${r.kind}/${r.name}`, r as { kind: 'secret' | 'configMap'; name: string }]));
  return [...unique.values()];
}

function keyFiles(
  what: string,
  data: Record<string, string> | undefined,
  items: V1KeyToPath[] | undefined,
  optional: boolean | undefined,
  mode: number,
): Resolved<VolumeFile[]> {
  if (!data) return optional ? { ok: true, value: [] } : { ok: false, message: `${what} not found` };
  if (!items) return { ok: true, value: Object.entries(data).map(([key, value]) => ({ path: key, data: value, mode })) };
  const files: VolumeFile[] = [];
  for (const item of items) {
    if (!(item.key in data)) {
      if (optional) continue;
      return { ok: false, message: `${what} has no key ${item.key}` };
    }
    files.push({ path: item.path, data: data[item.key], mode: item.mode ?? mode });
  }
  return { ok: true, value: files };
}

function projectionFiles(
  pod: V1Pod,
  facts: PodFacts,
  source: V1VolumeProjection,
  lookup: VolumeLookup,
  mode: number,
): Resolved<VolumeFile[]> {
  const namespace = pod.metadata?.namespace ?? 'default';
  if (source.secret) {
    const { name, items, optional } = source.secret;
    return keyFiles(`Secret ${namespace}/${name}`, lookup.secret(namespace, name ?? ''), items, optional, mode);
  }
  if (source.configMap) {
    const { name, items, optional } = source.configMap;
    return keyFiles(`ConfigMap ${namespace}/${name}`, lookup.configMap(namespace, name ?? ''), items, optional, mode);
  }
  if (source.downwardAPI) {
    const files: VolumeFile[] = [];
    for (const item of source.downwardAPI.items ?? []) {
      if (!item.fieldRef) return { ok: false, message: `downwardAPI ${item.path}: only fieldRef is supported` };
      const value = fieldValue(pod, facts, item.fieldRef.fieldPath);
      if (!value.ok) return value;
      files.push({ path: item.path, data: value.value, mode: item.mode ?? mode });
    }
    return { ok: true, value: files };
  }
  if (source.serviceAccountToken) {
    const spec = {
      audience: source.serviceAccountToken.audience,
      expirationSeconds: source.serviceAccountToken.expirationSeconds ?? DEFAULT_TOKEN_SECONDS,
    };
    const token = lookup.token(spec);
    if (token === undefined) return { ok: false, message: 'the service account token has not been issued yet' };
    return { ok: true, value: [{ path: source.serviceAccountToken.path, data: token, mode }] };
  }
  return { ok: false, message: 'only secret, configMap, downwardAPI and serviceAccountToken projections are supported' };
}

export function volumeContent(pod: V1Pod, facts: PodFacts, volume: V1Volume, lookup: VolumeLookup): Resolved<VolumeContent> {
  const namespace = pod.metadata?.namespace ?? 'default';
  const files = (r: Resolved<VolumeFile[]>): Resolved<VolumeContent> =>
    r.ok ? { ok: true, value: { kind: 'files', files: r.value } } : { ok: false, message: `volume ${volume.name}: ${r.message}` };
  if (volume.hostPath) return { ok: true, value: { kind: 'hostPath', path: volume.hostPath.path, type: volume.hostPath.type ?? '' } };
  if (volume.emptyDir) return { ok: true, value: { kind: 'emptyDir' } };
  if (volume.secret) {
    const { secretName, items, optional, defaultMode } = volume.secret;
    const data = lookup.secret(namespace, secretName ?? '');
    return files(keyFiles(`Secret ${namespace}/${secretName}`, data, items, optional, defaultMode ?? DEFAULT_MODE));
  }
  if (volume.configMap) {
    const { name, items, optional, defaultMode } = volume.configMap;
    const data = lookup.configMap(namespace, name ?? '');
    return files(keyFiles(`ConfigMap ${namespace}/${name}`, data, items, optional, defaultMode ?? DEFAULT_MODE));
  }
  if (volume.downwardAPI) {
    const projection = { downwardAPI: { items: volume.downwardAPI.items } };
    return files(projectionFiles(pod, facts, projection, lookup, volume.downwardAPI.defaultMode ?? DEFAULT_MODE));
  }
  if (volume.projected) {
    const all: VolumeFile[] = [];
    for (const source of volume.projected.sources ?? []) {
      const r = projectionFiles(pod, facts, source, lookup, volume.projected.defaultMode ?? DEFAULT_MODE);
      if (!r.ok) return files(r);
      all.push(...r.value);
    }
    return files({ ok: true, value: all });
  }
  return {
    ok: false,
    message: `volume ${volume.name}: the lab kubelet supports secret, configMap, downwardAPI, projected, hostPath and emptyDir volumes`,
  };
}
