/**
 * The table that holds a peer's last known records across sessions (the kinds and where they are
 * read: lib/kvstore/state-kinds.ts).
 */
/**
 * A peer's records of one kind. They outlive the session that read them: when a session is
 * replaced (new endpoints or certificates) every key becomes stale, and only the keys the new
 * session has not listed once it is synced are deleted, so a reconnect never empties the view.
 */
export class RecordTable<T> {
  private readonly records = new Map<string, T>();
  private stale: Set<string> | null = null;

  get size(): number {
    return this.records.size;
  }

  entries(): IterableIterator<[string, T]> {
    return this.records.entries();
  }

  values(): T[] {
    return [...this.records.values()];
  }

  upsert(key: string, value: T): void {
    this.records.set(key, value);
    this.stale?.delete(key);
  }

  /** True when the key was there. */
  delete(key: string): boolean {
    this.stale?.delete(key);
    return this.records.delete(key);
  }

  beginResync(): void {
    this.stale = new Set(this.records.keys());
  }

  /** Ends a resync: drops the keys the new session did not list; returns them. */
  endResync(): string[] {
    const gone = [...(this.stale ?? [])];
    this.stale = null;
    for (const key of gone) this.records.delete(key);
    return gone;
  }

  clear(): void {
    this.records.clear();
    this.stale = null;
  }
}
