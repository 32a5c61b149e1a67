/**
 * A container's environment and command line as the kubelet makes them: `$(VAR)` expansion,
 * fieldRef (also used by downwardAPI volumes), secretKeyRef, configMapKeyRef, envFrom. Pure.
 */
import type { V1Container, V1Pod } from '@kubernetes/client-node';

/** What only the node knows about a running pod. */
export interface PodFacts {
  hostIPs: string[];
  /** the pod's addresses (the node's for hostNetwork pods) */
  podIPs: string[];
}

export interface ObjectLookup {
  /** decoded data of a Secret, undefined when it does not exist (or is not readable yet) */
  secret(namespace: string, name: string): Record<string, string> | undefined;
  configMap(namespace: string, name: string): Record<string, string> | undefined;
}

export type Resolved<T> = { ok: true; value: T } | { ok: false; message: string };

/**
 * `$(NAME)` becomes the variable's value when it is defined and stays as written when not;
 * `$$` is a literal `$` (so `$$(NAME)` is the text `$(NAME)`), as in the Kubernetes API's rules.
 */
export function expandVars(text: string, vars: ReadonlyMap<string, string>): string {
  return text.replace(/\$\$|\$\(([^)]*)\)/g, (match, name: string | undefined) => {
    if (match === '$$') return '$';
    return name !== undefined && vars.has(name) ? (vars.get(name) as string) : match;
  });
}

const LABEL_OR_ANNOTATION = /^metadata\.(labels|annotations)\['(.+)'\]$/;

/** The value of a fieldRef path, or a message saying which paths exist. */
export function fieldValue(pod: V1Pod, facts: PodFacts, path: string): Resolved<string> {
  const simple: Record<string, string | undefined> = {
    'metadata.name': pod.metadata?.name,
    'metadata.namespace': pod.metadata?.namespace,
    'metadata.uid': pod.metadata?.uid,
    'spec.nodeName': pod.spec?.nodeName,
    'spec.serviceAccountName': pod.spec?.serviceAccountName,
    'status.hostIP': facts.hostIPs[0],
    'status.hostIPs': facts.hostIPs.join(','),
    'status.podIP': facts.podIPs[0],
    'status.podIPs': facts.podIPs.join(','),
  };
  if (path in simple) return { ok: true, value: simple[path] ?? '' };
  const keyed = LABEL_OR_ANNOTATION.exec(path);
  if (keyed) {
    const map = keyed[1] === 'labels' ? pod.metadata?.labels : pod.metadata?.annotations;
    return { ok: true, value: map?.[keyed[2]] ?? '' };
  }
  return {
    ok: false,
    message: `fieldRef ${path} is not supported by the lab kubelet (use one of ${Object.keys(simple).join(', ')}, metadata.labels['…'], metadata.annotations['…'])`,
  };
}

function keyOf(
  kind: 'secret' | 'configMap',
  ref: { name?: string; key: string; optional?: boolean },
  namespace: string,
  lookup: ObjectLookup,
): Resolved<string | undefined> {
  const data = lookup[kind](namespace, ref.name ?? '');
  const what = `${kind === 'secret' ? 'Secret' : 'ConfigMap'} ${namespace}/${ref.name}`;
  if (!data) return ref.optional ? { ok: true, value: undefined } : { ok: false, message: `${what} not found` };
  if (!(ref.key in data)) {
    return ref.optional ? { ok: true, value: undefined } : { ok: false, message: `${what} has no key ${ref.key}` };
  }
  return { ok: true, value: data[ref.key] };
}

/**
 * The container's environment in the kubelet's order: `base` (the lab's KUBERNETES_SERVICE_*),
 * then envFrom, then env, each value expanded with what is defined before it.
 */
export function containerEnv(
  pod: V1Pod,
  container: V1Container,
  facts: PodFacts,
  lookup: ObjectLookup,
  base: Record<string, string>,
): Resolved<Map<string, string>> {
  const namespace = pod.metadata?.namespace ?? 'default';
  const vars = new Map(Object.entries(base));
  for (const source of container.envFrom ?? []) {
    const ref = source.secretRef ?? source.configMapRef;
    const kind = source.secretRef ? 'secret' : 'configMap';
    const data = lookup[kind](namespace, ref?.name ?? '');
    if (!data) {
      if (ref?.optional) continue;
      return { ok: false, message: `${kind === 'secret' ? 'Secret' : 'ConfigMap'} ${namespace}/${ref?.name} not found` };
    }
    for (const [key, value] of Object.entries(data)) vars.set(`${source.prefix ?? ''}${key}`, value);
  }
  for (const entry of container.env ?? []) {
    const from = entry.valueFrom;
    let value: Resolved<string | undefined>;
    if (!from) value = { ok: true, value: expandVars(entry.value ?? '', vars) };
    else if (from.fieldRef) value = fieldValue(pod, facts, from.fieldRef.fieldPath);
    else if (from.secretKeyRef) value = keyOf('secret', from.secretKeyRef, namespace, lookup);
    else if (from.configMapKeyRef) value = keyOf('configMap', from.configMapKeyRef, namespace, lookup);
    else value = { ok: false, message: `env ${entry.name}: only value, fieldRef, secretKeyRef and configMapKeyRef are supported` };
    if (!value.ok) return { ok: false, message: `env ${entry.name}: ${value.message}` };
    if (value.value !== undefined) vars.set(entry.name, value.value);
  }
  return { ok: true, value: vars };
}

/** command and args with `$(VAR)` expanded from the final environment. */
export function expandedInvocation(
  container: V1Container,
  env: ReadonlyMap<string, string>,
): { command?: string[]; args?: string[] } {
  return {
    command: container.command?.map((word) => expandVars(word, env)),
    args: container.args?.map((word) => expandVars(word, env)),
  };
}
