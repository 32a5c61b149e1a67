/**
 * How long a peer's last known backends stay in the datapath (DESIGN §4, issue 4 item 4): a
 * disconnected peer keeps them (an etcd blip must not empty the maps; the health checker still
 * quarantines the dead ones) until the cache TTL of silence runs out; a peer removed from the
 * configuration is drained at once.
 */

/**
 * 5 minutes: an etcd or apiserver restart, or a network blip, reconnects well within it; past it
 * the peer's membership list is too old to trust (pods it started since are unknown to us).
 */
export const DEFAULT_PEER_CACHE_TTL_MS = 5 * 60_000;

export type PeerLink =
  { kind: 'connected' } | { kind: 'disconnected'; sinceMs: number } | { kind: 'removed' };

export interface Retention {
  keepBackends: boolean;
  /** when the decision changes by itself (the agent arms a timer for it) */
  recheckAtMs?: number;
  reason: string;
}

export function peerRetention(link: PeerLink, cacheTtlMs: number, nowMs: number): Retention {
  switch (link.kind) {
    case 'connected':
      return { keepBackends: true, reason: 'connected' };
    case 'removed':
      return { keepBackends: false, reason: 'removed from the configuration: drained' };
    case 'disconnected': {
      const expiresAtMs = link.sinceMs + cacheTtlMs;
      const silentS = Math.round((nowMs - link.sinceMs) / 1000);
      return nowMs < expiresAtMs
        ? {
            keepBackends: true,
            recheckAtMs: expiresAtMs,
            reason: `disconnected for ${silentS} s: last known backends kept`,
          }
        : { keepBackends: false, reason: `disconnected for ${silentS} s, past the cache TTL: dropped` };
    }
  }
}
