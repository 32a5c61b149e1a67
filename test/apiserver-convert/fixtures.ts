import type { V1Endpoint, V1EndpointSlice, V1Node, V1Pod, V1Service } from '@kubernetes/client-node';
import type { ExportContext } from '../../clustermesh-apiserver/convert/service.js';

/** Builders of the Kubernetes objects the conversions read, with only the fields they look at. */

export const WEST = { name: 'west', id: 2 };

export function service(overrides: {
  name?: string;
  namespace?: string;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  clusterIPs?: string[];
  ports?: Array<{ name?: string; port: number; protocol?: string }>;
  selector?: Record<string, string>;
  type?: string;
}): V1Service {
  const clusterIPs = overrides.clusterIPs ?? ['10.112.0.10'];
  return {
    metadata: {
      name: overrides.name ?? 'echo',
      namespace: overrides.namespace ?? 'default',
      annotations: overrides.annotations ?? { 'clustermesh.io/global': 'true' },
      labels: overrides.labels,
    },
    spec: {
      type: overrides.type ?? 'ClusterIP',
      clusterIP: clusterIPs[0],
      clusterIPs,
      ports: overrides.ports ?? [{ name: 'http', port: 80, protocol: 'TCP' }],
      selector: overrides.selector ?? { app: 'echo' },
    },
  };
}

export function endpoint(address: string | string[], conditions?: V1Endpoint['conditions']): V1Endpoint {
  return { addresses: Array.isArray(address) ? address : [address], conditions };
}

export function slice(overrides: {
  name?: string;
  namespace?: string;
  serviceName?: string;
  addressType?: string;
  endpoints: V1Endpoint[];
  ports?: Array<{ name?: string; port?: number; protocol?: string }>;
}): V1EndpointSlice {
  return {
    metadata: {
      name: overrides.name ?? 'echo-abc12',
      namespace: overrides.namespace ?? 'default',
      labels: { 'kubernetes.io/service-name': overrides.serviceName ?? 'echo' },
    },
    addressType: overrides.addressType ?? 'IPv4',
    endpoints: overrides.endpoints,
    ports: overrides.ports ?? [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
}

export const EXPORT_BY_DEFAULT: ExportContext = {
  namespaceAnnotations: undefined,
  hasServiceExport: false,
  globalNamespacesByDefault: true,
};

export function node(overrides: {
  name?: string;
  addresses?: Array<{ type: string; address: string }>;
  podCIDRs?: string[];
  podCIDR?: string;
}): V1Node {
  return {
    metadata: { name: overrides.name ?? 'west-worker' },
    spec: { podCIDRs: overrides.podCIDRs, podCIDR: overrides.podCIDR },
    status: { addresses: overrides.addresses ?? [{ type: 'InternalIP', address: '10.99.0.12' }] },
  };
}

export function pod(overrides: {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  serviceAccountName?: string;
  podIPs?: string[];
  hostIP?: string;
  hostNetwork?: boolean;
  phase?: string;
  ports?: Array<{ name?: string; containerPort: number; protocol?: string }>;
}): V1Pod {
  return {
    metadata: {
      name: overrides.name ?? 'echo-7d9f-x2k4p',
      namespace: overrides.namespace ?? 'default',
      labels: overrides.labels ?? { app: 'echo' },
    },
    spec: {
      hostNetwork: overrides.hostNetwork,
      serviceAccountName: overrides.serviceAccountName,
      containers: [{ name: 'main', image: 'echo', ports: overrides.ports }],
    },
    status: {
      phase: overrides.phase ?? 'Running',
      hostIP: overrides.hostIP ?? '10.99.0.12',
      podIPs: (overrides.podIPs ?? ['10.102.1.5']).map((ip) => ({ ip })),
    },
  };
}
