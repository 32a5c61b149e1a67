/**
 * Every kvstore key of DESIGN §3 (Cilium ClusterMesh v1 layout): prefixes, builders and
 * parsers. Nothing else in the code base spells a key.
 */

export const CLUSTER_CONFIG_PREFIX = 'cilium/cluster-config';
export const STATE_PREFIX = 'cilium/state';
export const SERVICES_PREFIX = 'cilium/state/services/v1';
export const NODES_PREFIX = 'cilium/state/nodes/v1';
export const IDENTITIES_PREFIX = 'cilium/state/identities/v1';
export const IDENTITY_ID_PREFIX = 'cilium/state/identities/v1/id';
export const IPCACHE_PREFIX = 'cilium/state/ip/v1';
/** Cilium's only ipcache address space. */
export const IPCACHE_DEFAULT_PREFIX = 'cilium/state/ip/v1/default';
export const SYNCED_PREFIX = 'cilium/synced';
export const HEARTBEAT_KEY = 'cilium/.heartbeat';
/** Where a kvstoremesh mirrors every peer into the local etcd (Cilium's `cilium/cache/…`). */
export const CACHE_PREFIX = 'cilium/cache';

/** The prefixes a cluster publishes, each with a sync canary named after it (as Cilium does). */
export const SYNCED_STATE_PREFIXES = [
  SERVICES_PREFIX,
  NODES_PREFIX,
  IDENTITIES_PREFIX,
  IPCACHE_PREFIX,
] as const;
export type SyncedStatePrefix = (typeof SYNCED_STATE_PREFIXES)[number];

export type RecordKind = 'config' | 'service' | 'node' | 'identity' | 'ipcache' | 'synced' | 'heartbeat';

export type ParsedKey =
  | { kind: 'config'; cluster: string }
  | { kind: 'service'; cluster: string; namespace: string; name: string }
  | { kind: 'node'; cluster: string; name: string }
  | { kind: 'identity'; id: number }
  /** `prefix` is an address, or `address/len` for an entry with a mask (Cilium's PrefixString). */
  | { kind: 'ipcache'; prefix: string }
  | { kind: 'synced'; cluster: string; prefix: string }
  | { kind: 'heartbeat' };

export const clusterConfigKey = (cluster: string): string => `${CLUSTER_CONFIG_PREFIX}/${cluster}`;

/** `cilium/state/services/v1/<cluster>/` — what one cluster's service store owns. */
export const servicesClusterPrefix = (cluster: string): string => `${SERVICES_PREFIX}/${cluster}/`;
export const serviceKey = (cluster: string, namespace: string, name: string): string =>
  `${SERVICES_PREFIX}/${cluster}/${namespace}/${name}`;

export const nodesClusterPrefix = (cluster: string): string => `${NODES_PREFIX}/${cluster}/`;
export const nodeKey = (cluster: string, name: string): string => `${NODES_PREFIX}/${cluster}/${name}`;

export const identityKey = (id: number): string => `${IDENTITY_ID_PREFIX}/${id}`;
/** `prefix` is an address, or `address/len` when the entry has a mask. */
export const ipcacheKey = (prefix: string): string => `${IPCACHE_DEFAULT_PREFIX}/${prefix}`;

/** `cilium/synced/<cluster>/<prefix>`, e.g. `cilium/synced/west/cilium/state/services/v1`. */
export const syncedCanaryKey = (cluster: string, prefix: string): string =>
  `${SYNCED_PREFIX}/${cluster}/${prefix}`;
export const syncedClusterPrefix = (cluster: string): string => `${SYNCED_PREFIX}/${cluster}/`;

/** Cilium's StateToCachePrefix: `cilium/state/services/v1` → `cilium/cache/services/v1`. */
export function stateToCachePrefix(statePrefix: string): string {
  if (!statePrefix.startsWith(`${STATE_PREFIX}/`))
    throw new Error(`${statePrefix} is not under ${STATE_PREFIX}/`);
  return `${CACHE_PREFIX}/${statePrefix.slice(STATE_PREFIX.length + 1)}`;
}

/*
 * The cache of one peer, as Cilium's KVStoreMesh lays it out: services and nodes keep their
 * `<cluster>/…` tail, identities and ipcache (which a peer's etcd holds only for itself) get the
 * cluster's name inserted, the ipcache's in place of the `default` address space.
 */
/** `cilium/cache/services/v1/<cluster>/` (keys `…/<ns>/<name>`) */
export const cachedServicesClusterPrefix = (cluster: string): string =>
  `${stateToCachePrefix(SERVICES_PREFIX)}/${cluster}/`;
/** `cilium/cache/nodes/v1/<cluster>/` (keys `…/<node>`) */
export const cachedNodesClusterPrefix = (cluster: string): string =>
  `${stateToCachePrefix(NODES_PREFIX)}/${cluster}/`;
/** `cilium/cache/identities/v1/<cluster>/id/` (keys `…/<numeric id>`) */
export const cachedIdentityIdPrefix = (cluster: string): string =>
  `${stateToCachePrefix(IDENTITIES_PREFIX)}/${cluster}/id/`;
/** `cilium/cache/ip/v1/<cluster>/` (keys `…/<address>[/<len>]`) */
export const cachedIpcacheClusterPrefix = (cluster: string): string =>
  `${stateToCachePrefix(IPCACHE_PREFIX)}/${cluster}/`;

const KEY_PARSERS: ReadonlyArray<[string, (segments: string[]) => ParsedKey | null]> = [
  [
    CLUSTER_CONFIG_PREFIX,
    ([cluster, ...rest]) => (cluster && rest.length === 0 ? { kind: 'config', cluster } : null),
  ],
  [
    SERVICES_PREFIX,
    ([cluster, namespace, name, ...rest]) =>
      cluster && namespace && name && rest.length === 0
        ? { kind: 'service', cluster, namespace, name }
        : null,
  ],
  [
    NODES_PREFIX,
    ([cluster, name, ...rest]) =>
      cluster && name && rest.length === 0 ? { kind: 'node', cluster, name } : null,
  ],
  [
    IDENTITY_ID_PREFIX,
    ([id, ...rest]) =>
      id && rest.length === 0 && /^[1-9][0-9]*$/.test(id) ? { kind: 'identity', id: Number(id) } : null,
  ],
  [
    IPCACHE_DEFAULT_PREFIX,
    ([address, length, ...rest]) =>
      address && rest.length === 0 && length !== ''
        ? { kind: 'ipcache', prefix: length === undefined ? address : `${address}/${length}` }
        : null,
  ],
  [
    SYNCED_PREFIX,
    ([cluster, ...rest]) =>
      cluster && rest.length > 0 && rest.every(Boolean)
        ? { kind: 'synced', cluster, prefix: rest.join('/') }
        : null,
  ],
];

/** Parses any key of the schema; null for a key that is not part of it. */
export function parseKey(key: string): ParsedKey | null {
  if (key === HEARTBEAT_KEY) return { kind: 'heartbeat' };
  for (const [prefix, parse] of KEY_PARSERS) {
    if (key.startsWith(`${prefix}/`)) return parse(key.slice(prefix.length + 1).split('/'));
  }
  return null;
}

/** Parses a key that must be of `kind`; null when it is not. */
export function parseKeyOfKind<K extends RecordKind>(
  kind: K,
  key: string,
): Extract<ParsedKey, { kind: K }> | null {
  const parsed = parseKey(key);
  return parsed && parsed.kind === kind ? (parsed as Extract<ParsedKey, { kind: K }>) : null;
}
