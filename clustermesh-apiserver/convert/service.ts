import type { V1Endpoint, V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { parseServicePolicy, shouldExport } from '../../lib/k8s/annotations.js';
import type { ClusterService, PortConfiguration, PortMap } from '../../lib/kvstore/types.js';
import type { ClusterRef } from './cluster.js';
import { canonicalWireIp, wireIp } from './ip.js';
import { toL4Protocol } from './ports.js';
import { reject, type Rejection } from './rejection.js';

/** The label by which an EndpointSlice names its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** What besides the Service decides whether it is exported. */
export interface ExportContext {
  /** annotations of the Service's Namespace; undefined when unannotated or not (yet) known */
  namespaceAnnotations: Readonly<Record<string, string>> | undefined;
  /** a ServiceExport with the Service's namespace and name exists */
  hasServiceExport: boolean;
  /** the `--global-namespaces-default` flag: do unannotated namespaces count as global */
  globalNamespacesByDefault: boolean;
}

export interface ServiceConversion {
  /** the record to publish, or `null`: not exported (`skipped` says why) or rejected (see `rejections`) */
  service: ClusterService | null;
  skipped?: string;
  /** objects (or parts of them) that could not be converted; the rest still converts */
  rejections: Rejection[];
  /** annotation leftovers overridden by a higher-precedence name (log them; nothing is wrong with the record) */
  warnings: string[];
}

/** The service's ClusterIPs; `{}` frontends for a headless Service, which (as in Cilium) still exports its backends. */
function frontendIPs(svc: V1Service, rejections: Rejection[]): string[] {
  const spec = svc.spec ?? {};
  const listed = spec.clusterIPs?.length ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : [];
  const ips: string[] = [];
  for (const text of listed) {
    if (text.toLowerCase() === 'none') continue;
    const ip = canonicalWireIp(text);
    if (ip) ips.push(ip);
    else
      rejections.push(
        reject('Service', svc, `spec.clusterIPs: ${JSON.stringify(text)} is not an IP address; skipped`),
      );
  }
  return ips;
}

function isHeadless(svc: V1Service): boolean {
  return (svc.spec?.clusterIP ?? '').toLowerCase() === 'none';
}

/** Service ports by name (unnamed = ""); the first port of a name wins, as in Cilium's ParseService. */
function servicePorts(svc: V1Service, rejections: Rejection[]): PortMap {
  const ports = new Map<string, PortConfiguration>();
  for (const port of svc.spec?.ports ?? []) {
    const name = port.name ?? '';
    const protocol = toL4Protocol(port.protocol);
    if (protocol === null) {
      rejections.push(
        reject(
          'Service',
          svc,
          `spec.ports[${JSON.stringify(name)}]: protocol ${port.protocol} is not supported (TCP, UDP); skipped`,
        ),
      );
    } else if (!ports.has(name)) {
      ports.set(name, { Protocol: protocol, Port: port.port });
    }
  }
  return Object.fromEntries(ports);
}

/**
 * EndpointSlice API semantics: `ready` unset means ready (unknown state counts as ready);
 * `serving` unset defers to `ready`. Exported: ready, or not ready but serving (a terminating
 * endpoint that still answers), exactly as Cilium's ParseEndpointSliceV1.
 */
export function isReadyOrServing(endpoint: V1Endpoint): boolean {
  const ready = endpoint.conditions?.ready ?? true;
  const serving = endpoint.conditions?.serving ?? ready;
  return ready || serving;
}

/** Slice ports by name; SCTP and port-less entries are dropped (the Service's own ports report SCTP). */
function slicePorts(slice: V1EndpointSlice): Array<[string, PortConfiguration]> {
  const ports: Array<[string, PortConfiguration]> = [];
  for (const port of slice.ports ?? []) {
    const protocol = toL4Protocol(port.protocol);
    if (protocol !== null && port.port !== undefined)
      ports.push([port.name ?? '', { Protocol: protocol, Port: port.port }]);
  }
  return ports;
}

const SLICE_FAMILIES: Record<string, 4 | 6> = { IPv4: 4, IPv6: 6 };

function addSliceBackends(
  slice: V1EndpointSlice,
  backends: Map<string, Map<string, PortConfiguration>>,
  rejections: Rejection[],
): void {
  const family = SLICE_FAMILIES[slice.addressType];
  if (family === undefined) return; // FQDN slices carry no addresses to balance to (Cilium skips them too)
  const ports = slicePorts(slice);
  // `null` when the slice has no endpoint (its Service scaled to 0): the API server sends it so
  const endpoints: V1Endpoint[] = slice.endpoints ?? [];
  endpoints.forEach((endpoint, i) => {
    if (!isReadyOrServing(endpoint)) return;
    endpoint.addresses.forEach((text, j) => {
      const ip = wireIp(text);
      if (!ip) {
        rejections.push(
          reject(
            'EndpointSlice',
            slice,
            `endpoints[${i}].addresses[${j}]: ${JSON.stringify(text)} is not an IP address; skipped`,
          ),
        );
      } else if (ip.family !== family) {
        rejections.push(
          reject(
            'EndpointSlice',
            slice,
            `endpoints[${i}].addresses[${j}]: ${text} is not an ${slice.addressType} address as addressType says; skipped`,
          ),
        );
      } else {
        const backendPorts = backends.get(ip.text) ?? new Map<string, PortConfiguration>();
        backends.set(ip.text, backendPorts);
        for (const [name, port] of ports) if (!backendPorts.has(name)) backendPorts.set(name, port);
      }
    });
  });
}

/** Go's `sort.Strings` order (bytewise), which `localeCompare` is not. */
function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The slices of `svc`: same namespace and `kubernetes.io/service-name`, in name order so merging is deterministic. */
function slicesOf(svc: V1Service, endpointSlices: readonly V1EndpointSlice[]): V1EndpointSlice[] {
  return endpointSlices
    .filter(
      (s) =>
        s.metadata?.namespace === svc.metadata?.namespace &&
        s.metadata?.labels?.[SERVICE_NAME_LABEL] === svc.metadata?.name,
    )
    .sort((a, b) => byteOrder(a.metadata?.name ?? '', b.metadata?.name ?? ''));
}

/**
 * An empty object to key by addresses. Every Service has addresses no other has, and V8 gives a
 * plain object a new hidden class for each new property name: at 10k Services × 10 endpoints that
 * cost more than the rest of the conversion. A prototype-less object is a hash table from the start.
 */
function addressMap<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

/** Ready-or-serving addresses of all the Service's slices, merged per address (the first slice naming a port wins). */
function backendsOf(
  svc: V1Service,
  endpointSlices: readonly V1EndpointSlice[],
  rejections: Rejection[],
): Record<string, PortMap> {
  const backends = new Map<string, Map<string, PortConfiguration>>();
  for (const slice of slicesOf(svc, endpointSlices)) addSliceBackends(slice, backends, rejections);
  const byAddress = addressMap<PortMap>();
  for (const [address, ports] of backends) byAddress[address] = Object.fromEntries(ports);
  return byAddress;
}

/**
 * The ClusterService record of a Service (`cilium/state/services/v1/<cluster>/<ns>/<name>`), when it
 * is exported: global (or ServiceExport-ed) and not `shared: "false"`, in a global namespace (see
 * `shouldExport`). Every published record is shared by construction; `includeExternal` says whether
 * this cluster itself consumes remote backends (its global annotation), as in Cilium.
 *
 * Frontends are all ClusterIPs (both families), each with the Service's named ports; backends the
 * ready-or-serving addresses of its EndpointSlices. ExternalName Services and Services without a
 * ClusterIP (that are not headless) have nothing to share and are skipped. A malformed annotation
 * rejects the Service; a bad address or port rejects only itself.
 */
export function serviceToClusterService(
  cluster: ClusterRef,
  svc: V1Service,
  endpointSlices: readonly V1EndpointSlice[],
  context: ExportContext,
): ServiceConversion {
  const policy = parseServicePolicy(svc.metadata?.annotations);
  if (!policy.ok) return { service: null, rejections: [reject('Service', svc, policy.error)], warnings: [] };
  const { warnings } = policy;
  const decision = shouldExport(
    policy.value,
    context.namespaceAnnotations,
    context.hasServiceExport,
    context.globalNamespacesByDefault,
  );
  if (!decision.export) return { service: null, skipped: decision.reason, rejections: [], warnings };
  if (svc.spec?.type === 'ExternalName') {
    return {
      service: null,
      skipped: 'ExternalName services have no cluster IP or endpoints',
      rejections: [],
      warnings,
    };
  }
  const rejections: Rejection[] = [];
  const frontends = frontendIPs(svc, rejections);
  if (frontends.length === 0 && !isHeadless(svc)) {
    return { service: null, skipped: 'has no valid cluster IP', rejections, warnings };
  }
  const ports = servicePorts(svc, rejections);
  const frontendPorts = addressMap<PortMap>();
  for (const ip of frontends) frontendPorts[ip] = { ...ports };
  return {
    service: {
      cluster: cluster.name,
      namespace: svc.metadata?.namespace ?? '',
      name: svc.metadata?.name ?? '',
      frontends: frontendPorts,
      backends: backendsOf(svc, endpointSlices, rejections),
      labels: { ...svc.metadata?.labels },
      selector: { ...svc.spec?.selector },
      includeExternal: policy.value.global,
      shared: true,
      clusterID: cluster.id,
    },
    rejections,
    warnings,
  };
}
