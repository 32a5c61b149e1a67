/** A small cluster as Kubernetes objects, and the records it must produce. */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { KubeApiServer } from '../harness/kube-apiserver.js';
import { endpoint, node, pod, service, slice } from '../apiserver-convert/fixtures.js';
import { withKind } from './helpers.js';

export const svc = (o: Parameters<typeof service>[0]) => withKind('v1', 'Service', service(o));
export const eps = (o: Parameters<typeof slice>[0]) =>
  withKind('discovery.k8s.io/v1', 'EndpointSlice', slice(o));
export const nodeObj = (o: Parameters<typeof node>[0]) => withKind('v1', 'Node', node(o));
export const podObj = (o: Parameters<typeof pod>[0]) => withKind('v1', 'Pod', pod(o));
export { endpoint };

/** Two global services (ours and Cilium's annotation), a non-global one, a `shared: false` one. */
export function goldenCluster(): KubernetesObject[] {
  return [
    svc({ name: 'echo', clusterIPs: ['10.112.0.10'] }),
    eps({
      name: 'echo-abc12',
      serviceName: 'echo',
      endpoints: [
        endpoint('10.102.1.5'),
        endpoint('10.102.1.6', { ready: false, serving: false }),
        endpoint('10.102.2.7', { ready: false, serving: true, terminating: true }),
      ],
    }),
    svc({
      name: 'api',
      clusterIPs: ['10.112.0.20'],
      annotations: { 'service.cilium.io/global': 'true' },
      ports: [{ name: 'grpc', port: 9090, protocol: 'TCP' }],
      selector: { app: 'api' },
    }),
    eps({
      name: 'api-x1',
      serviceName: 'api',
      endpoints: [endpoint('10.102.2.9')],
      ports: [{ name: 'grpc', port: 9091, protocol: 'TCP' }],
    }),
    svc({ name: 'internal', clusterIPs: ['10.112.0.30'], annotations: {} }),
    eps({ name: 'internal-1', serviceName: 'internal', endpoints: [endpoint('10.102.1.8')] }),
    svc({
      name: 'consumer',
      clusterIPs: ['10.112.0.40'],
      annotations: { 'clustermesh.io/global': 'true', 'clustermesh.io/shared': 'false' },
    }),
    eps({ name: 'consumer-1', serviceName: 'consumer', endpoints: [endpoint('10.102.1.9')] }),
    nodeObj({ name: 'west-worker', podCIDRs: ['10.102.1.0/24'] }),
    nodeObj({
      name: 'west-worker2',
      addresses: [{ type: 'InternalIP', address: '10.99.0.13' }],
      podCIDRs: ['10.102.2.0/24', 'fd99:102:0:2::/64'],
    }),
    podObj({ name: 'echo-1', podIPs: ['10.102.1.5'] }),
    podObj({ name: 'echo-2', podIPs: ['10.102.2.7'], hostIP: '10.99.0.13' }),
    podObj({
      name: 'api-1',
      labels: { app: 'api', 'pod-template-hash': '5d8f' },
      podIPs: ['10.102.2.9'],
      hostIP: '10.99.0.13',
      ports: [{ name: 'grpc', containerPort: 9091, protocol: 'TCP' }],
    }),
  ];
}

// The API server gives every Namespace its kubernetes.io/metadata.name label and every Pod a
// ServiceAccount; Cilium puts both into the identity's labels.
export const DEFAULT_NAMESPACE_LABELS =
  'k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=default;k8s:io.cilium.k8s.policy.cluster=west;k8s:io.cilium.k8s.policy.serviceaccount=default;k8s:io.kubernetes.pod.namespace=default;';
export const ECHO_LABELS = `k8s:app=echo;${DEFAULT_NAMESPACE_LABELS}`;
export const API_LABELS = `k8s:app=api;${DEFAULT_NAMESPACE_LABELS}`;

export async function createAll(kube: KubeApiServer, objects: KubernetesObject[]): Promise<void> {
  for (const obj of objects) await kube.objects.create(obj);
}

export async function update(kube: KubeApiServer, obj: KubernetesObject): Promise<void> {
  await kube.objects.update(obj);
}
