/**
 * The local cluster as the merge sees it (pure): Kubernetes Services, EndpointSlices, Namespaces,
 * ServiceExports in, `LocalService[]` out (the addresses no peer may publish: lib/k8s/local-addresses.ts).
 */
import type { V1EndpointSlice, V1Namespace, V1Service } from '@kubernetes/client-node';
import {
  SERVICE_ANNOTATIONS,
  parseNamespaceGlobal,
  parseServicePolicy,
  type ParseResult,
  type ServicePolicy,
} from '../../lib/k8s/annotations.js';
import { serviceClusterIPs } from '../../lib/k8s/local-addresses.js';
import type { L4Protocol } from '../../lib/kvstore/types.js';
import type { LocalBackend, LocalService, ServicePort } from '../merge/types.js';

/** The label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export interface LocalObjects {
  services: readonly V1Service[];
  endpointSlices: readonly V1EndpointSlice[];
  namespaces: readonly V1Namespace[];
  /** `<namespace>/<name>` of every ServiceExport */
  serviceExports: ReadonlySet<string>;
}

const key = (namespace: string | undefined, name: string | undefined): string => `${namespace ?? ''}/${name ?? ''}`;

const isL4Protocol = (p: string): p is L4Protocol => p === 'TCP' || p === 'UDP';

function servicePorts(svc: V1Service): ServicePort[] {
  return (svc.spec?.ports ?? [])
    .map((p) => ({ name: p.name ?? '', port: p.port, protocol: p.protocol ?? 'TCP' }))
    .filter((p): p is ServicePort => isL4Protocol(p.protocol)); // SCTP: the socket LB has no hook for it
}

/**
 * Kubernetes semantics of nil conditions: ready nil = ready, serving nil = same as ready,
 * terminating nil = not terminating.
 */
export function slicesToBackends(slices: readonly V1EndpointSlice[]): LocalBackend[] {
  const backends: LocalBackend[] = [];
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue;
    const ports: Record<string, number> = {};
    for (const p of slice.ports ?? []) if (p.port !== undefined) ports[p.name ?? ''] = p.port;
    for (const endpoint of slice.endpoints ?? []) {
      const ready = endpoint.conditions?.ready ?? true;
      const serving = endpoint.conditions?.serving ?? ready;
      const terminating = endpoint.conditions?.terminating ?? false;
      for (const addr of endpoint.addresses) backends.push({ addr, ports, ready, serving, terminating });
    }
  }
  return backends;
}

/** Whether annotations name globality at all (an explicit "false" must beat a ServiceExport). */
function hasGlobalAnnotation(annotations: Record<string, string> | undefined): boolean {
  return SERVICE_ANNOTATIONS.global.some((k) => annotations?.[k] !== undefined);
}

/**
 * A ServiceExport (MCS) makes an unannotated Service global with the default policy; its other
 * annotations (shared, affinity, …) still apply. A namespace that is not global (annotated so, or
 * with a malformed annotation) makes every Service in it not global, as on the export side.
 */
export function servicePolicy(
  svc: V1Service,
  namespace: V1Namespace | undefined,
  exported: boolean,
): ParseResult<ServicePolicy> {
  const annotations = svc.metadata?.annotations;
  const viaExport = exported && !hasGlobalAnnotation(annotations);
  const policy = parseServicePolicy(
    viaExport ? { ...annotations, [SERVICE_ANNOTATIONS.global[0]]: 'true' } : annotations,
  );
  if (!policy.ok || !policy.value.global) return policy;
  const ns = parseNamespaceGlobal(namespace?.metadata?.annotations);
  const nsName = svc.metadata?.namespace ?? '';
  if (!ns.ok) return notGlobalBecause(policy.warnings, `namespace ${nsName}: ${ns.error}`);
  if (ns.value === false) return notGlobalBecause(policy.warnings, `namespace ${nsName} is annotated not global`);
  return policy;
}

function notGlobalBecause(warnings: string[], why: string): ParseResult<ServicePolicy> {
  return {
    ok: true,
    value: { global: false, shared: false, affinity: 'none', minHealthyLocal: 0, clusterPreference: [] },
    warnings: [...warnings, `${why}: the Service is treated as not global`],
  };
}

export function buildLocalServices(objects: LocalObjects): LocalService[] {
  const slicesByService = new Map<string, V1EndpointSlice[]>();
  for (const slice of objects.endpointSlices) {
    const owner = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (owner === undefined) continue;
    const k = key(slice.metadata?.namespace, owner);
    slicesByService.set(k, [...(slicesByService.get(k) ?? []), slice]);
  }
  const namespaces = new Map(objects.namespaces.map((ns) => [ns.metadata?.name ?? '', ns]));
  return objects.services
    .filter((svc) => svc.spec?.type !== 'ExternalName')
    .map((svc) => {
      const k = key(svc.metadata?.namespace, svc.metadata?.name);
      return {
        namespace: svc.metadata?.namespace ?? '',
        name: svc.metadata?.name ?? '',
        clusterIPs: serviceClusterIPs(svc),
        ports: servicePorts(svc),
        policy: servicePolicy(svc, namespaces.get(svc.metadata?.namespace ?? ''), objects.serviceExports.has(k)),
        localBackends: slicesToBackends(slicesByService.get(k) ?? []),
      };
    });
}

/** The annotation problem of a Service or Namespace, if any (what the informers log and count). */
export function annotationProblem(kind: 'Service' | 'Namespace', annotations: Record<string, string> | undefined): string | null {
  const parsed = kind === 'Service' ? parseServicePolicy(annotations) : parseNamespaceGlobal(annotations);
  return parsed.ok ? null : parsed.error;
}
