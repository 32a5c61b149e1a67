/**
 * The slot layout of one service (DESIGN §5), a pure function: slot 0 is the service and carries
 * `count`, the number of active backends; slots 1..count hold the active backends (the only ones
 * the programs ever pick); the other backends follow, so they stay visible without being chosen.
 */
import type { BackendState } from './types.js';

export interface SlotCandidate {
  backendId: number;
  state: BackendState;
}

export interface SlotLayout {
  /** active backends: slots 1..count */
  count: number;
  /** backend IDs of slots 1..n, in slot order */
  slots: number[];
}

/**
 * Active first, then the rest; within each group by backend ID, so the same desired state always
 * gives the same layout (no rewrites) and new backends (higher IDs) append instead of shifting.
 * A backend listed twice keeps its first state.
 */
export function layoutSlots(candidates: readonly SlotCandidate[]): SlotLayout {
  const firstState = new Map<number, BackendState>();
  for (const { backendId, state } of candidates) if (!firstState.has(backendId)) firstState.set(backendId, state);
  const ids = [...firstState.keys()].sort((a, b) => a - b);
  const active = ids.filter((id) => firstState.get(id) === 'active');
  const inactive = ids.filter((id) => firstState.get(id) !== 'active');
  return { count: active.length, slots: [...active, ...inactive] };
}
