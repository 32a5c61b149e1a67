/**
 * The four kinds of state imported from a peer (DESIGN §3), the table that holds a peer's last
 * known records across sessions, and the metric class of a rejected record.
 */
import {
  IDENTITIES_PREFIX,
  IDENTITY_ID_PREFIX,
  IPCACHE_DEFAULT_PREFIX,
  IPCACHE_PREFIX,
  NODES_PREFIX,
  SERVICES_PREFIX,
  nodesClusterPrefix,
  servicesClusterPrefix,
  type RecordKind,
} from '../../lib/kvstore/keys.js';

export const STATE_KINDS = ['services', 'nodes', 'identities', 'ipcache'] as const;
export type StateKind = (typeof STATE_KINDS)[number];

export interface StateKindSpec {
  /** the record kind validateRemoteRecord checks */
  record: RecordKind & ('service' | 'node' | 'identity' | 'ipcache');
  /** what the peer's store of this kind owns */
  prefix: (cluster: string) => string;
  /** the prefix the peer's sync canary is named after */
  canaryOf: string;
}

/**
 * Services and nodes sit under the cluster's name; identities and ipcache do not (a peer's etcd
 * holds only its own), so for those the cluster bits of each ID are what validation checks.
 */
export const STATE_KIND_SPECS: Record<StateKind, StateKindSpec> = {
  services: { record: 'service', prefix: servicesClusterPrefix, canaryOf: SERVICES_PREFIX },
  nodes: { record: 'node', prefix: nodesClusterPrefix, canaryOf: NODES_PREFIX },
  identities: { record: 'identity', prefix: () => `${IDENTITY_ID_PREFIX}/`, canaryOf: IDENTITIES_PREFIX },
  ipcache: { record: 'ipcache', prefix: () => `${IPCACHE_DEFAULT_PREFIX}/`, canaryOf: IPCACHE_PREFIX },
};

/**
 * A peer's records of one kind. They outlive the session that read them: when a session is
 * replaced (new endpoints or certificates) every key becomes stale, and only the keys the new
 * session has not listed once it is synced are deleted, so a reconnect never empties the view.
 */
export class RecordTable<T> {
  private readonly records = new Map<string, T>();
  private stale: Set<string> | null = null;

  get size(): number {
    return this.records.size;
  }

  entries(): IterableIterator<[string, T]> {
    return this.records.entries();
  }

  values(): T[] {
    return [...this.records.values()];
  }

  upsert(key: string, value: T): void {
    this.records.set(key, value);
    this.stale?.delete(key);
  }

  /** True when the key was there. */
  delete(key: string): boolean {
    this.stale?.delete(key);
    return this.records.delete(key);
  }

  beginResync(): void {
    this.stale = new Set(this.records.keys());
  }

  /** Ends a resync: drops the keys the new session did not list; returns them. */
  endResync(): string[] {
    const gone = [...(this.stale ?? [])];
    this.stale = null;
    for (const key of gone) this.records.delete(key);
    return gone;
  }

  clear(): void {
    this.records.clear();
    this.stale = null;
  }
}

/**
 * Pure: a bounded label for a rejection reason (the reason itself names keys and values, far too
 * many for a metric label). Ordered: the first match wins.
 */
const REJECTION_CLASSES: ReadonlyArray<[RegExp, string]> = [
  [/exceeds the \d+-byte limit/, 'too-large'],
  [/is not valid JSON/, 'malformed'],
  [/key names cluster|label k8s:io\.cilium\.k8s\.policy\.cluster is/, 'foreign-cluster'],
  [/is not the cluster ID|cluster ID of .* is not known/, 'cluster-id'],
  [/value says .* but the key says/, 'key-mismatch'],
  [/is not a \w+ key/, 'bad-key'],
  [/IP address|IPv[46] address|network mask|mask does not match/, 'invalid-address'],
];

export function rejectionClass(key: string, reason: string): string {
  // The key is the peer's text: leave it out, so it cannot pick its own class.
  const why = reason.startsWith(`${key}: `) ? reason.slice(key.length + 2) : reason;
  return REJECTION_CLASSES.find(([pattern]) => pattern.test(why))?.[1] ?? 'invalid-field';
}
