/**
 * The resource table: every kind this server stores. Objects are stored generically (JSON), so
 * adding a kind is one line here; discovery, routing and the OpenAPI stubs all derive from it.
 */

export interface ResourceType {
  /** "v1" for core, "group/version" otherwise — what objects carry in `apiVersion`. */
  apiVersion: string;
  group: string;
  version: string;
  kind: string;
  /** The URL segment, e.g. "services". */
  plural: string;
  namespaced: boolean;
  shortNames: string[];
  /** Has a `/status` subresource: updates of the main resource keep `.status`, `/status` updates touch only it. */
  hasStatus: boolean;
}

interface Entry {
  apiVersion: string;
  kind: string;
  plural: string;
  namespaced: boolean;
  shortNames?: string[];
  status?: boolean;
}

const NAMESPACED = true;
const CLUSTER = false;

// prettier-ignore
const ENTRIES: Entry[] = [
  { apiVersion: 'v1', kind: 'Namespace', plural: 'namespaces', namespaced: CLUSTER, shortNames: ['ns'], status: true },
  { apiVersion: 'v1', kind: 'Node', plural: 'nodes', namespaced: CLUSTER, shortNames: ['no'], status: true },
  { apiVersion: 'v1', kind: 'Pod', plural: 'pods', namespaced: NAMESPACED, shortNames: ['po'], status: true },
  { apiVersion: 'v1', kind: 'Service', plural: 'services', namespaced: NAMESPACED, shortNames: ['svc'], status: true },
  { apiVersion: 'v1', kind: 'Secret', plural: 'secrets', namespaced: NAMESPACED },
  { apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: NAMESPACED, shortNames: ['cm'] },
  { apiVersion: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts', namespaced: NAMESPACED, shortNames: ['sa'] },
  { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', plural: 'endpointslices', namespaced: NAMESPACED },
  { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', plural: 'leases', namespaced: NAMESPACED },
  { apiVersion: 'multicluster.x-k8s.io/v1alpha1', kind: 'ServiceExport', plural: 'serviceexports', namespaced: NAMESPACED, shortNames: ['svcex'], status: true },
  { apiVersion: 'apps/v1', kind: 'Deployment', plural: 'deployments', namespaced: NAMESPACED, shortNames: ['deploy'], status: true },
  { apiVersion: 'apps/v1', kind: 'DaemonSet', plural: 'daemonsets', namespaced: NAMESPACED, shortNames: ['ds'], status: true },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', plural: 'clusterroles', namespaced: CLUSTER },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', plural: 'clusterrolebindings', namespaced: CLUSTER },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', plural: 'roles', namespaced: NAMESPACED },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', plural: 'rolebindings', namespaced: NAMESPACED },
];

function toResourceType(entry: Entry): ResourceType {
  const slash = entry.apiVersion.indexOf('/');
  return {
    apiVersion: entry.apiVersion,
    group: slash < 0 ? '' : entry.apiVersion.slice(0, slash),
    version: slash < 0 ? entry.apiVersion : entry.apiVersion.slice(slash + 1),
    kind: entry.kind,
    plural: entry.plural,
    namespaced: entry.namespaced,
    shortNames: entry.shortNames ?? [],
    hasStatus: entry.status ?? false,
  };
}

export const RESOURCE_TYPES: readonly ResourceType[] = ENTRIES.map(toResourceType);

/** Namespaces that exist from the start, as in a fresh cluster. */
export const INITIAL_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];

export interface KindRef {
  apiVersion?: string;
  kind?: string;
}

const byKind = new Map(RESOURCE_TYPES.map((t) => [`${t.apiVersion}/${t.kind}`, t]));
const byPath = new Map(RESOURCE_TYPES.map((t) => [`${t.group}/${t.version}/${t.plural}`, t]));

export function resourceTypeOf(ref: KindRef): ResourceType | undefined {
  return byKind.get(`${ref.apiVersion}/${ref.kind}`);
}

export function resourceTypeAt(group: string, version: string, plural: string): ResourceType | undefined {
  return byPath.get(`${group}/${version}/${plural}`);
}

export interface GroupVersion {
  group: string;
  version: string;
  groupVersion: string;
  types: ResourceType[];
}

/** The API group/versions in table order (core first), each with its resource types. */
export function groupVersions(): GroupVersion[] {
  const result = new Map<string, GroupVersion>();
  for (const t of RESOURCE_TYPES) {
    const gv = result.get(t.apiVersion) ?? {
      group: t.group,
      version: t.version,
      groupVersion: t.apiVersion,
      types: [],
    };
    gv.types.push(t);
    result.set(t.apiVersion, gv);
  }
  return [...result.values()];
}
