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

const EMPTY = 0; // never a backend ID (CM_BACKEND_ID_NONE)

/**
 * Active first, then the rest. A backend that stays in its group keeps the slot it had in
 * `previous` (each slot that moves is a map write, and a replaced backend should cost one write,
 * not a shift of every slot behind it); the others fill the free slots of their group in
 * backend-ID order, so the same inputs always give the same layout. A backend listed twice keeps
 * its first state.
 */
export function layoutSlots(candidates: readonly SlotCandidate[], previous: readonly number[] = []): SlotLayout {
  const firstState = new Map<number, BackendState>();
  for (const { backendId, state } of candidates) if (!firstState.has(backendId)) firstState.set(backendId, state);
  const ids = [...firstState.keys()].sort((a, b) => a - b);
  const active = ids.filter((id) => firstState.get(id) === 'active');
  const inactive = ids.filter((id) => firstState.get(id) !== 'active');
  const slots = new Array<number>(ids.length).fill(EMPTY);
  const previousIndex = new Map<number, number>();
  previous.forEach((id, i) => previousIndex.has(id) || previousIndex.set(id, i));
  placeGroup(slots, active, 0, active.length, previousIndex);
  placeGroup(slots, inactive, active.length, ids.length, previousIndex);
  return { count: active.length, slots };
}

/** Puts `group` into slots[start, end): kept positions first, then the free ones in order. */
function placeGroup(slots: number[], group: number[], start: number, end: number, previousIndex: Map<number, number>): void {
  const moving: number[] = [];
  for (const id of group) {
    const at = previousIndex.get(id);
    if (at !== undefined && at >= start && at < end) slots[at] = id;
    else moving.push(id);
  }
  let free = start;
  for (const id of moving) {
    while (slots[free] !== EMPTY) free++;
    slots[free] = id;
  }
}
