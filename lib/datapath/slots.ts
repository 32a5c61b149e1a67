/**
 * The slot layout of one service (DESIGN §5), a pure function: slot 0 is the service and carries
 * `count`, the number of active backends; slots 1..count hold the active backends (the only ones
 * the programs ever pick); the other backends follow, so they stay visible without being chosen.
 * It runs for every new or changed service, so it works on plain arrays (a service has a handful
 * of backends) and falls back to a Set/Map only for long lists.
 */

export interface SlotLayout {
  /** active backends: slots 1..count */
  count: number;
  /** backend IDs of slots 1..n, in slot order */
  slots: readonly number[];
}

const EMPTY = 0; // never a backend ID (CM_BACKEND_ID_NONE)
/** Up to this many backends, linear scans beat building a Set or Map. */
const SHORT = 16;

/**
 * Active first, then the rest. Neither argument nor result is changed afterwards (the result may
 * be `backendIds` itself). A backend that stays in its group keeps the slot it had in
 * `previous` (each slot that moves is a map write, and a replaced backend should cost one write,
 * not a shift of every slot behind it); the others fill the free slots of their group in
 * backend-ID order, so the same inputs always give the same layout. A backend listed twice keeps
 * its first state. `active[i]` tells whether `backendIds[i]` is active (entries of `active` past
 * backendIds.length are never read).
 */
export function layoutSlots(backendIds: readonly number[], active: readonly boolean[], previous: readonly number[] = []): SlotLayout {
  if (previous.length === 0 && ascendingAndActive(backendIds, active)) return { count: backendIds.length, slots: backendIds };
  if (samePlacesAsBefore(backendIds, active, previous)) return { count: previous.length, slots: previous };
  const ids: number[] = [];
  const states: boolean[] = [];
  const seen = backendIds.length > SHORT ? new Set<number>() : undefined;
  for (let i = 0; i < backendIds.length; i++) {
    const id = backendIds[i];
    if (seen ? seen.has(id) : ids.includes(id)) continue;
    seen?.add(id);
    ids.push(id);
    states.push(active[i]);
  }
  const order = ids.map((_, i) => i).sort((a, b) => ids[a] - ids[b]);
  const activeIds: number[] = [];
  const inactiveIds: number[] = [];
  for (const i of order) (states[i] ? activeIds : inactiveIds).push(ids[i]);
  const slots = new Array<number>(ids.length).fill(EMPTY);
  const previousIndex = slotIndexOf(previous);
  placeGroup(slots, activeIds, 0, activeIds.length, previousIndex);
  placeGroup(slots, inactiveIds, activeIds.length, ids.length, previousIndex);
  return { count: activeIds.length, slots };
}

/** The common case of a new service: IDs handed out in listing order, every backend active. */
function ascendingAndActive(ids: readonly number[], active: readonly boolean[]): boolean {
  for (let i = 0; i < ids.length; i++) if (!active[i] || (i > 0 && ids[i] <= ids[i - 1])) return false;
  return true;
}

/** Every backend active, each listed once, and `previous` holds exactly them: every one keeps its slot. */
function samePlacesAsBefore(ids: readonly number[], active: readonly boolean[], previous: readonly number[]): boolean {
  if (ids.length !== previous.length || ids.length > SHORT) return false;
  for (let i = 0; i < ids.length; i++) if (!active[i] || !previous.includes(ids[i]) || ids.indexOf(ids[i]) !== i) return false;
  return true;
}

/** The first slot index each ID had in `previous` (-1: none). */
function slotIndexOf(previous: readonly number[]): (id: number) => number {
  if (previous.length <= SHORT) return (id) => previous.indexOf(id);
  const index = new Map<number, number>();
  previous.forEach((id, i) => index.has(id) || index.set(id, i));
  return (id) => index.get(id) ?? -1;
}

/** Puts `group` into slots[start, end): kept positions first, then the free ones in order. */
function placeGroup(slots: number[], group: number[], start: number, end: number, previousIndex: (id: number) => number): void {
  const moving: number[] = [];
  for (const id of group) {
    const at = previousIndex(id);
    if (at >= start && at < end) slots[at] = id;
    else moving.push(id);
  }
  let free = start;
  for (const id of moving) {
    while (slots[free] !== EMPTY) free++;
    slots[free] = id;
  }
}
