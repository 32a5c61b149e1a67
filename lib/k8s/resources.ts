/**
 * The collections the daemons watch, each as what a ResourceInformer needs: its API path and the
 * list call for the same collection, cluster-wide. Every collection is listed as plain JSON
 * (`listJson`: the objects the watch delivers too, without client-node's deserialization).
 */
import type {
  KubeConfig,
  KubernetesObject,
  V1EndpointSlice,
  V1Namespace,
  V1Node,
  V1Pod,
  V1Secret,
  V1Service,
} from '@kubernetes/client-node';
import { listJson, type ListFn } from './informer.js';

/** The MCS API's ServiceExport; a cluster may not serve it (the CRD not installed). */
export const SERVICE_EXPORT = {
  group: 'multicluster.x-k8s.io',
  version: 'v1alpha1',
  plural: 'serviceexports',
} as const;

export type ServiceExport = KubernetesObject;

export interface ResourceSource<T extends KubernetesObject> {
  path: string;
  list: ListFn<T>;
  /** applied by `list` too */
  fieldSelector?: string;
}

export interface ClusterResources {
  services: ResourceSource<V1Service>;
  endpointSlices: ResourceSource<V1EndpointSlice>;
  nodes: ResourceSource<V1Node>;
  pods: ResourceSource<V1Pod>;
  namespaces: ResourceSource<V1Namespace>;
  serviceExports: ResourceSource<ServiceExport>;
}

function jsonSource<T extends KubernetesObject>(
  kubeConfig: KubeConfig,
  path: string,
  fieldSelector?: string,
): ResourceSource<T> {
  return {
    path,
    list: () => listJson<T>(kubeConfig, path, fieldSelector),
    ...(fieldSelector === undefined ? {} : { fieldSelector }),
  };
}

export function clusterResources(kubeConfig: KubeConfig): ClusterResources {
  const { group, version, plural } = SERVICE_EXPORT;
  return {
    services: jsonSource(kubeConfig, '/api/v1/services'),
    endpointSlices: jsonSource(kubeConfig, '/apis/discovery.k8s.io/v1/endpointslices'),
    nodes: jsonSource(kubeConfig, '/api/v1/nodes'),
    pods: jsonSource(kubeConfig, '/api/v1/pods'),
    namespaces: jsonSource(kubeConfig, '/api/v1/namespaces'),
    serviceExports: jsonSource(kubeConfig, `/apis/${group}/${version}/${plural}`),
  };
}

/** One Secret, by name (a field selector: the Secret may be absent, which lists as empty). */
export function namedSecret(
  kubeConfig: KubeConfig,
  namespace: string,
  name: string,
): ResourceSource<V1Secret> {
  return jsonSource(kubeConfig, `/api/v1/namespaces/${namespace}/secrets`, `metadata.name=${name}`);
}
