/**
 * The collections the daemons watch, each as what a ResourceInformer needs: its API path and the
 * list call for the same collection, cluster-wide.
 */
import {
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type V1EndpointSlice,
  type V1Namespace,
  type V1Node,
  type V1Pod,
  type V1Secret,
  type V1Service,
} from '@kubernetes/client-node';
import type { ListFn } from './informer.js';

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

export function clusterResources(kubeConfig: KubeConfig): ClusterResources {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const discovery = kubeConfig.makeApiClient(DiscoveryV1Api);
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const { group, version, plural } = SERVICE_EXPORT;
  return {
    services: { path: '/api/v1/services', list: () => core.listServiceForAllNamespaces() },
    endpointSlices: {
      path: '/apis/discovery.k8s.io/v1/endpointslices',
      list: () => discovery.listEndpointSliceForAllNamespaces(),
    },
    nodes: { path: '/api/v1/nodes', list: () => core.listNode() },
    pods: { path: '/api/v1/pods', list: () => core.listPodForAllNamespaces() },
    namespaces: { path: '/api/v1/namespaces', list: () => core.listNamespace() },
    serviceExports: {
      path: `/apis/${group}/${version}/${plural}`,
      list: () =>
        custom.listClusterCustomObject({ group, version, plural }) as Promise<KubernetesListObject<ServiceExport>>,
    },
  };
}

/** One Secret, by name (a field selector: the Secret may be absent, which lists as empty). */
export function namedSecret(kubeConfig: KubeConfig, namespace: string, name: string): ResourceSource<V1Secret> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const fieldSelector = `metadata.name=${name}`;
  return {
    path: `/api/v1/namespaces/${namespace}/secrets`,
    list: () => core.listNamespacedSecret({ namespace, fieldSelector }),
    fieldSelector,
  };
}
