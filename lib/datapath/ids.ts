/**
 * Stable ID allocation for services (rev NAT index, 1..65535) and backends (1..2^32-1).
 * An identity keeps its ID for as long as it is wanted; new IDs come from a cursor that only
 * moves forward (wrapping), so a just-freed ID is not handed to someone else while sockets or
 * slots may still refer to it.
 */
export class IdAllocator<K = string> {
  private readonly byIdentity = new Map<K, number>();
  private readonly used = new Set<number>();
  private cursor: number;

  constructor(
    private readonly what: string,
    private readonly maxId: number,
    restored: Iterable<[identity: K, id: number]> = [],
  ) {
    let highest = 0;
    for (const [identity, id] of restored) {
      if (this.byIdentity.has(identity) || this.used.has(id)) continue;
      this.byIdentity.set(identity, id);
      this.used.add(id);
      highest = Math.max(highest, id);
    }
    this.cursor = highest;
  }

  get(identity: K): number | undefined {
    return this.byIdentity.get(identity);
  }

  /** The identity's ID, allocating one if it has none. */
  acquire(identity: K): number {
    const existing = this.byIdentity.get(identity);
    if (existing !== undefined) return existing;
    if (this.used.size >= this.maxId) throw new Error(`out of ${this.what} IDs: at most ${this.maxId} can exist at once`);
    do this.cursor = this.cursor >= this.maxId ? 1 : this.cursor + 1;
    while (this.used.has(this.cursor));
    this.byIdentity.set(identity, this.cursor);
    this.used.add(this.cursor);
    return this.cursor;
  }

  /** Frees the identity's ID (if it has one). */
  release(identity: K): void {
    const id = this.byIdentity.get(identity);
    if (id === undefined) return;
    this.byIdentity.delete(identity);
    this.used.delete(id);
  }

  /** Frees every identity not in `wanted` (a set, or a map keyed by identity: no copy needed). */
  retainOnly(wanted: { has(identity: K): boolean }): void {
    for (const identity of this.byIdentity.keys()) if (!wanted.has(identity)) this.release(identity);
  }

  entries(): IterableIterator<[K, number]> {
    return this.byIdentity.entries();
  }
}
