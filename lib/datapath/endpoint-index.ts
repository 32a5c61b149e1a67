/**
 * EndpointKey → ID, the map the ID allocators keep (lib/datapath/ids.ts). Numeric keys (IPv4
 * TCP/UDP endpoints, address·2^17 + port·2 + UDP bit: above 2^31, so a JS Map boxes every one of
 * them and its garbage dominated a full sync) live in an open-addressing table of typed arrays
 * with linear probing and backward-shift deletion; string keys (IPv6) in a plain Map.
 */
import type { EndpointKey } from './state.js';

const LOW_SPAN = 131072; // 2^17: port·2 + UDP bit
const INITIAL_SLOTS = 1024;

export class EndpointIndex {
  /** per slot: the key's address part, its low part + 1 (0: empty slot), the ID */
  private high = new Uint32Array(INITIAL_SLOTS);
  private low = new Uint32Array(INITIAL_SLOTS);
  private ids = new Uint32Array(INITIAL_SLOTS);
  private mask = INITIAL_SLOTS - 1;
  private numeric = 0;
  private readonly strings = new Map<string, number>();

  get size(): number {
    return this.numeric + this.strings.size;
  }

  get(key: EndpointKey): number | undefined {
    if (typeof key === 'string') return this.strings.get(key);
    const slot = this.find(key);
    return this.low[slot] === 0 ? undefined : this.ids[slot];
  }

  has(key: EndpointKey): boolean {
    return this.get(key) !== undefined;
  }

  set(key: EndpointKey, id: number): void {
    if (typeof key === 'string') {
      this.strings.set(key, id);
      return;
    }
    let slot = this.find(key);
    if (this.low[slot] === 0) {
      if ((this.numeric + 1) * 2 > this.mask + 1) {
        this.rehash((this.mask + 1) * 2);
        slot = this.find(key);
      }
      const high = Math.floor(key / LOW_SPAN);
      this.high[slot] = high;
      this.low[slot] = key - high * LOW_SPAN + 1;
      this.numeric++;
    }
    this.ids[slot] = id;
  }

  /** Room for `entries` numeric keys in all, made at once (one rehash instead of one per doubling). */
  reserve(entries: number): void {
    let slots = this.mask + 1;
    while (entries * 2 > slots) slots *= 2;
    if (slots > this.mask + 1) this.rehash(slots);
  }

  delete(key: EndpointKey): boolean {
    if (typeof key === 'string') return this.strings.delete(key);
    let hole = this.find(key);
    if (this.low[hole] === 0) return false;
    this.numeric--;
    // backward-shift: move later entries of the probe run into the hole when their home allows
    for (let next = (hole + 1) & this.mask; this.low[next] !== 0; next = (next + 1) & this.mask) {
      const home = this.home(this.high[next], this.low[next] - 1);
      const between = hole <= next ? home > hole && home <= next : home > hole || home <= next;
      if (between) continue;
      this.high[hole] = this.high[next];
      this.low[hole] = this.low[next];
      this.ids[hole] = this.ids[next];
      hole = next;
    }
    this.low[hole] = 0;
    return true;
  }

  *entries(): IterableIterator<[EndpointKey, number]> {
    const numeric: [EndpointKey, number][] = [];
    for (let slot = 0; slot <= this.mask; slot++) if (this.low[slot] !== 0) numeric.push([this.high[slot] * LOW_SPAN + this.low[slot] - 1, this.ids[slot]]);
    yield* numeric;
    yield* this.strings.entries();
  }

  private home(high: number, low: number): number {
    return (Math.imul(high ^ Math.imul(low, 0x9e3779b1), 0x85ebca6b) >>> 0) & this.mask;
  }

  /** The slot holding `key`, or the empty slot where it would go. */
  private find(key: number): number {
    const high = Math.floor(key / LOW_SPAN);
    const low = key - high * LOW_SPAN;
    let slot = this.home(high, low);
    while (this.low[slot] !== 0 && (this.high[slot] !== high || this.low[slot] !== low + 1)) slot = (slot + 1) & this.mask;
    return slot;
  }

  private rehash(slots: number): void {
    const { high, low, ids } = this;
    this.high = new Uint32Array(slots);
    this.low = new Uint32Array(slots);
    this.ids = new Uint32Array(slots);
    this.mask = slots - 1;
    for (let s = 0; s < high.length; s++) {
      if (low[s] === 0) continue;
      let slot = this.home(high[s], low[s] - 1);
      while (this.low[slot] !== 0) slot = (slot + 1) & this.mask;
      this.high[slot] = high[s];
      this.low[slot] = low[s];
      this.ids[slot] = ids[s];
    }
  }
}
