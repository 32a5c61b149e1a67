/** When the agent loop's next pass may start (pure): pacing by pass cost and by peers still syncing. */
import { SYNCING_PASS_SPACING_MS, nextPassAtMs, peersStillSyncing, type PeerSyncState } from '../../lib/pass-pacing.js';

const peer = (id: number | null, connected: boolean, services: boolean): PeerSyncState => ({ id, connected, synced: { services } });

describe('peersStillSyncing', () => {
  it.each([
    ['no peers', [], false],
    ['every peer synced', [peer(2, true, true), peer(3, true, true)], false],
    ['a connected peer still listing', [peer(2, true, true), peer(3, true, false)], true],
    ['a peer not connected yet (nothing is coming from it)', [peer(3, false, false)], false],
    ['a connected peer whose ID was not accepted', [peer(null, true, false)], false],
    ['a disconnected peer that synced before', [peer(2, false, true)], false],
  ])('%s → %s', (_why, peers, expected) => {
    expect(peersStillSyncing(peers)).toBe(expected);
  });
});

describe('nextPassAtMs', () => {
  const now = 10_000;
  it.each([
    ['first pass: at once, even while peers sync', null, true, now],
    ['a quick last pass in a quiet mesh: at once', { startMs: now - 5, durationMs: 1 }, false, now],
    ['a slow last pass: not before its own duration has passed again', { startMs: now - 300, durationMs: 250 }, false, now + 200],
    ['peers syncing: one spacing after the last start', { startMs: now - 100, durationMs: 10 }, true, now - 100 + SYNCING_PASS_SPACING_MS],
    ['peers syncing, spacing already over: at once', { startMs: now - 2 * SYNCING_PASS_SPACING_MS, durationMs: 10 }, true, now],
    ['peers syncing and a pass slower than the spacing: the cost wins', { startMs: now - 100, durationMs: SYNCING_PASS_SPACING_MS }, true, now - 100 + 2 * SYNCING_PASS_SPACING_MS],
  ])('%s', (_why, last, syncing, expected) => {
    expect(nextPassAtMs(last, syncing, now)).toBe(expected);
  });
});
