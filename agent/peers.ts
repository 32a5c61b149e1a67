/**
 * Which remote state the agent programs (pure): a disconnected peer keeps its last known state
 * until the cache TTL (DESIGN §4), a removed peer is gone at once, and after a restart the backends
 * restored from the pinned maps stay until their cluster has synced again, so a restart never
 * opens a gap in the datapath.
 */
import type { DatapathBackend, DatapathService } from '../lib/datapath/types.js';
import type { ClusterService, IPCacheEntry, NodeRecord } from '../lib/kvstore/types.js';
import { peerRetention, type PeerLink } from './health/index.js';

/** A remote cluster as agent/remote presents it (RemoteClusterView). */
export interface PeerView {
  name: string;
  id: number;
  link: { state: 'connected' } | { state: 'disconnected'; sinceMs: number };
  services: ClusterService[];
  nodes: NodeRecord[];
  identities: Map<number, string>;
  ipcache: IPCacheEntry[];
}

export interface PeerDecision {
  cluster: string;
  kept: boolean;
  reason: string;
}

export interface KeptPeers {
  kept: PeerView[];
  decisions: PeerDecision[];
  /** the earliest time a decision changes by itself (a cache TTL runs out) */
  recheckAtMs?: number;
}

const toLink = (link: PeerView['link']): PeerLink =>
  link.state === 'connected' ? { kind: 'connected' } : { kind: 'disconnected', sinceMs: link.sinceMs };

export function keptPeers(views: readonly PeerView[], cacheTtlMs: number, nowMs: number): KeptPeers {
  const kept: PeerView[] = [];
  const decisions: PeerDecision[] = [];
  let recheckAtMs: number | undefined;
  for (const view of views) {
    const retention = peerRetention(toLink(view.link), cacheTtlMs, nowMs);
    if (retention.keepBackends) kept.push(view);
    decisions.push({ cluster: view.name, kept: retention.keepBackends, reason: retention.reason });
    if (retention.recheckAtMs !== undefined) recheckAtMs = Math.min(recheckAtMs ?? Infinity, retention.recheckAtMs);
  }
  return { kept, decisions, recheckAtMs };
}

const frontendKey = (s: Pick<DatapathService, 'vip' | 'port' | 'proto'>): string => `${s.vip}|${s.port}|${s.proto}`;
const backendKey = (b: Pick<DatapathBackend, 'addr' | 'port'>): string => `${b.addr}|${b.port}`;
const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Adds to each desired service the restored backends of `clusterIds` (clusters not synced since
 * the agent started) that it still had in the maps, in the merge's backend order. A service that
 * is no longer desired (its local Service is gone) takes none: the local cluster is authoritative.
 */
export function withRestoredBackends(
  desired: readonly DatapathService[],
  restored: readonly DatapathService[],
  clusterIds: ReadonlySet<number>,
): DatapathService[] {
  if (clusterIds.size === 0) return [...desired];
  const restoredByFrontend = new Map(restored.map((s) => [frontendKey(s), s]));
  return desired.map((service) => {
    const old = restoredByFrontend.get(frontendKey(service));
    if (!old) return service;
    const present = new Set(service.backends.map(backendKey));
    const carried = old.backends.filter((b) => clusterIds.has(b.clusterId) && !present.has(backendKey(b)));
    if (carried.length === 0) return service;
    const backends = [...service.backends, ...carried].sort(
      (a, b) => a.clusterId - b.clusterId || compare(a.addr, b.addr) || a.port - b.port,
    );
    return { ...service, backends };
  });
}
