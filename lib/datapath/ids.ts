/**
 * Stable ID allocation for services (rev NAT index, 1..65535) and backends (1..262143): both
 * index the arrays of bpf/sock_lb.c, so they are dense and bounded.
 * An identity keeps its ID for as long as it is wanted; new IDs come from a cursor that only
 * moves forward (wrapping), so a just-freed ID is not handed to someone else while sockets or
 * slots may still refer to it.
 */

/** Identity → ID: a Map, or anything that works like one (lib/datapath/endpoint-index.ts). */
export interface IdIndex<K> {
  readonly size: number;
  get(identity: K): number | undefined;
  has(identity: K): boolean;
  set(identity: K, id: number): unknown;
  delete(identity: K): boolean;
  entries(): IterableIterator<[K, number]>;
  /** Room for this many identities at once, when the index can make it (a full sync's 120k backends). */
  reserve?(entries: number): void;
}

export class IdAllocator<K = string> {
  /** 1 at each ID in use: a byte each beats a Set of numbers */
  private readonly used: Uint8Array;
  private cursor: number;

  constructor(
    private readonly what: string,
    private readonly maxId: number,
    restored: Iterable<[identity: K, id: number]> = [],
    private readonly byIdentity: IdIndex<K> = new Map<K, number>(),
  ) {
    this.used = new Uint8Array(maxId + 1);
    let highest = 0;
    for (const [identity, id] of restored) {
      if (this.byIdentity.has(identity) || this.used[id] === 1) continue;
      this.byIdentity.set(identity, id);
      this.used[id] = 1;
      highest = Math.max(highest, id);
    }
    this.cursor = highest;
  }

  get(identity: K): number | undefined {
    return this.byIdentity.get(identity);
  }

  /** How many IDs are in use. */
  get size(): number {
    return this.byIdentity.size;
  }

  /** The identity's ID, allocating one if it has none. */
  acquire(identity: K): number {
    return this.byIdentity.get(identity) ?? this.allocate(identity);
  }

  /** A new ID for an identity that has none (the caller just looked: one lookup less). */
  allocate(identity: K): number {
    if (this.byIdentity.size >= this.maxId) throw new Error(`out of ${this.what} IDs: at most ${this.maxId} can exist at once`);
    do this.cursor = this.cursor >= this.maxId ? 1 : this.cursor + 1;
    while (this.used[this.cursor] === 1);
    this.byIdentity.set(identity, this.cursor);
    this.used[this.cursor] = 1;
    return this.cursor;
  }

  /** Room for `entries` identities in all (an upper bound), so the index does not grow step by step. */
  reserve(entries: number): void {
    this.byIdentity.reserve?.(entries);
  }

  /** Frees the identity's ID (if it has one). */
  release(identity: K): void {
    const id = this.byIdentity.get(identity);
    if (id === undefined) return;
    this.byIdentity.delete(identity);
    this.used[id] = 0;
  }

  entries(): IterableIterator<[K, number]> {
    return this.byIdentity.entries();
  }
}
