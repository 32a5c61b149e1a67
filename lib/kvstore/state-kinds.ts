/**
 * The four kinds of state a cluster imports from each peer (DESIGN §3), and where they are read:
 * in the peer's own etcd (`cilium/state/…`), or in the local etcd under `cilium/cache/…` where a
 * kvstoremesh mirrors the peer (its cluster config then says `"cached": true`). Records keep their
 * state key whatever the source, so validation and everything downstream see one layout. The
 * clustermesh-apiserver writes each kind where a peer reads it directly (`stateSource(kind, cluster, false)`).
 */
import {
  IDENTITIES_PREFIX,
  IDENTITY_ID_PREFIX,
  IPCACHE_DEFAULT_PREFIX,
  IPCACHE_PREFIX,
  NODES_PREFIX,
  SERVICES_PREFIX,
  cachedIdentityIdPrefix,
  cachedIpcacheClusterPrefix,
  cachedNodesClusterPrefix,
  cachedServicesClusterPrefix,
  nodesClusterPrefix,
  servicesClusterPrefix,
  stateToCachePrefix,
  syncedCanaryKey,
  type RecordKind,
} from './keys.js';

export const STATE_KINDS = ['services', 'nodes', 'identities', 'ipcache'] as const;
export type StateKind = (typeof STATE_KINDS)[number];

export interface StateKindSpec {
  /** the record kind validateRemoteRecord checks */
  record: RecordKind & ('service' | 'node' | 'identity' | 'ipcache');
  /** what the peer's store of this kind owns in its own etcd */
  prefix: (cluster: string) => string;
  /** the prefix the peer's sync canary is named after */
  canaryOf: string;
  /** where a kvstoremesh caches the same keys in the local etcd */
  cachePrefix: (cluster: string) => string;
}

/**
 * Services and nodes sit under the cluster's name; identities and ipcache do not (a peer's etcd
 * holds only its own), so for those the cluster bits of each ID are what validation checks.
 */
export const STATE_KIND_SPECS: Record<StateKind, StateKindSpec> = {
  services: {
    record: 'service',
    prefix: servicesClusterPrefix,
    canaryOf: SERVICES_PREFIX,
    cachePrefix: cachedServicesClusterPrefix,
  },
  nodes: {
    record: 'node',
    prefix: nodesClusterPrefix,
    canaryOf: NODES_PREFIX,
    cachePrefix: cachedNodesClusterPrefix,
  },
  identities: {
    record: 'identity',
    prefix: () => `${IDENTITY_ID_PREFIX}/`,
    canaryOf: IDENTITIES_PREFIX,
    cachePrefix: cachedIdentityIdPrefix,
  },
  ipcache: {
    record: 'ipcache',
    prefix: () => `${IPCACHE_DEFAULT_PREFIX}/`,
    canaryOf: IPCACHE_PREFIX,
    cachePrefix: cachedIpcacheClusterPrefix,
  },
};

/** Where one kind of one peer is read, and how its keys map back to state keys. */
export interface StateSource {
  prefix: string;
  /** the writer's sync canary: the peer's own, or the kvstoremesh's for the cache */
  canaryKey: string;
  /** a key under `prefix` → the state key it stands for */
  toStateKey: (key: string) => string;
}

export function stateSource(kind: StateKind, cluster: string, cached: boolean): StateSource {
  const spec = STATE_KIND_SPECS[kind];
  const state = spec.prefix(cluster);
  if (!cached)
    return { prefix: state, canaryKey: syncedCanaryKey(cluster, spec.canaryOf), toStateKey: (key) => key };
  const cache = spec.cachePrefix(cluster);
  return {
    prefix: cache,
    canaryKey: syncedCanaryKey(cluster, stateToCachePrefix(spec.canaryOf)),
    toStateKey: (key) => rebase(key, cache, state),
  };
}

/** The cache key of a peer's state key (what a kvstoremesh writes). */
export function cacheKeyOf(kind: StateKind, cluster: string, stateKey: string): string {
  const spec = STATE_KIND_SPECS[kind];
  return rebase(stateKey, spec.prefix(cluster), spec.cachePrefix(cluster));
}

function rebase(key: string, from: string, to: string): string {
  if (!key.startsWith(from)) throw new Error(`key ${key} is not under ${from}`);
  return to + key.slice(from.length);
}
