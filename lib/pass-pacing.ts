/**
 * When a loop over the whole mesh may start its next pass (pure): the agent's loop
 * (agent/controller.ts: merge, datapath) and the kvstoremesh's address-ownership decision
 * (clustermesh-apiserver/kvstoremesh/kvstoremesh.ts). A pass covers every peer, so:
 * - while a peer is still streaming its initial listing, a pass per peer would redo that work
 *   once per peer (16 peers joining: 16 full merges and datapath plans, each thrown away by the
 *   next): passes are spaced out then;
 * - a stream of changes (health transitions while a peer's backends die one by one) must not
 *   keep the loop busy back to back: a pass never starts sooner after the last one than that
 *   one took, so the loop uses at most half the CPU and its garbage has time to be collected.
 * A single change in a quiet mesh is still merged at once.
 */

/** What the pacing needs of a peer's status (the agent's RemoteClusters.status(), the kvstoremesh's mirrors). */
export interface PeerSyncState {
  /** the peer's cluster ID once its config was read and accepted */
  id: number | null;
  connected: boolean;
  synced: { services: boolean };
}

/**
 * 1 s: a peer's initial listing (thousands of services) takes about that long to arrive and
 * validate, and one more second before its first backends are programmed is far inside what a
 * restart or a new peer may take.
 */
export const SYNCING_PASS_SPACING_MS = 1000;

/**
 * A connected peer with an accepted ID whose services have not synced yet: more of the mesh is
 * about to arrive. An unreachable peer does not count (nothing is coming from it), so it can
 * never slow the loop down.
 */
export function peersStillSyncing(peers: readonly PeerSyncState[]): boolean {
  return peers.some((p) => p.connected && p.id !== null && !p.synced.services);
}

export interface LastPass {
  startMs: number;
  durationMs: number;
}

/** The earliest time the next pass may start; `last` null: no pass yet. */
export function nextPassAtMs(last: LastPass | null, syncing: boolean, nowMs: number, syncingSpacingMs = SYNCING_PASS_SPACING_MS): number {
  if (last === null) return nowMs;
  const spacingMs = Math.max(2 * last.durationMs, syncing ? syncingSpacingMs : 0);
  return Math.max(nowMs, last.startMs + spacingMs);
}
