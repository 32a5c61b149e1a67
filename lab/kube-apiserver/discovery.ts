/**
 * Discovery documents (the legacy, unaggregated form: clients that ask for aggregated discovery
 * accept it when the Content-Type says plain JSON) and the OpenAPI answers kubectl needs. Pure.
 */
import { type GroupVersion, type ResourceType, groupVersions } from './resources.js';

const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
const STATUS_VERBS = ['get', 'patch', 'update'];

export const VERSION_INFO = {
  major: '1',
  minor: '34',
  gitVersion: 'v1.34.0-clustermesh-lab',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2026-01-01T00:00:00Z',
  goVersion: 'go1.24.0',
  compiler: 'gc',
  platform: 'linux/amd64',
};

function apiResources(type: ResourceType): object[] {
  const main = {
    name: type.plural,
    singularName: type.kind.toLowerCase(),
    namespaced: type.namespaced,
    kind: type.kind,
    verbs: VERBS,
    ...(type.shortNames.length > 0 ? { shortNames: type.shortNames } : {}),
  };
  if (!type.hasStatus) return [main];
  return [
    main,
    {
      name: `${type.plural}/status`,
      singularName: '',
      namespaced: type.namespaced,
      kind: type.kind,
      verbs: STATUS_VERBS,
    },
  ];
}

export function apiResourceList(gv: GroupVersion): object {
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: gv.groupVersion,
    resources: gv.types.flatMap(apiResources),
  };
}

export function coreVersions(serverAddress: string): object {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

function apiGroup(group: string, versions: GroupVersion[]): object {
  const listed = versions.map((gv) => ({ groupVersion: gv.groupVersion, version: gv.version }));
  return { name: group, versions: listed, preferredVersion: listed[0] };
}

function namedGroups(): Map<string, GroupVersion[]> {
  const groups = new Map<string, GroupVersion[]>();
  for (const gv of groupVersions()) {
    if (gv.group === '') continue;
    groups.set(gv.group, [...(groups.get(gv.group) ?? []), gv]);
  }
  return groups;
}

export function apiGroupList(): object {
  const groups = [...namedGroups()].map(([group, versions]) => apiGroup(group, versions));
  return { kind: 'APIGroupList', apiVersion: 'v1', groups };
}

export function apiGroupOf(group: string): object | undefined {
  const versions = namedGroups().get(group);
  return versions ? { kind: 'APIGroup', apiVersion: 'v1', ...apiGroup(group, versions) } : undefined;
}

export function groupVersionOf(group: string, version: string): GroupVersion | undefined {
  return groupVersions().find((gv) => gv.group === group && gv.version === version);
}

/** The discovery document (or undefined) for a discovery path such as `/api/v1` or `/apis/apps`. */
export function discoveryDocument(pathname: string, serverAddress: string): object | undefined {
  const segments = pathname.split('/').filter((s) => s !== '');
  if (segments[0] === 'api') {
    if (segments.length === 1) return coreVersions(serverAddress);
    const gv = segments.length === 2 ? groupVersionOf('', segments[1]) : undefined;
    return gv && apiResourceList(gv);
  }
  if (segments[0] === 'apis') {
    if (segments.length === 1) return apiGroupList();
    if (segments.length === 2) return apiGroupOf(segments[1]);
    const gv = segments.length === 3 ? groupVersionOf(segments[1], segments[2]) : undefined;
    return gv && apiResourceList(gv);
  }
  return undefined;
}
