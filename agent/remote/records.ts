/**
 * The table that holds a peer's last known records across sessions, and the metric class of a
 * rejected record (the kinds and where they are read: lib/kvstore/state-kinds.ts).
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

/**
 * Pure: a bounded label for a rejection reason (the reason itself names keys and values, far too
 * many for a metric label). Ordered: the first match wins.
 */
const REJECTION_CLASSES: ReadonlyArray<[RegExp, string]> = [
  [/exceeds the \d+-byte limit/, 'too-large'],
  [/is not valid JSON/, 'malformed'],
  [/key names cluster|label k8s:io\.cilium\.k8s\.policy\.cluster is/, 'foreign-cluster'],
  [/is not the cluster ID|cluster ID of .* is not known/, 'cluster-id'],
  [/value says .* but the key says/, 'key-mismatch'],
  [/is not a \w+ key/, 'bad-key'],
  [/IP address|IPv[46] address|network mask|mask does not match/, 'invalid-address'],
];

export function rejectionClass(key: string, reason: string): string {
  // The key is the peer's text: leave it out, so it cannot pick its own class.
  const why = reason.startsWith(`${key}: `) ? reason.slice(key.length + 2) : reason;
  return REJECTION_CLASSES.find(([pattern]) => pattern.test(why))?.[1] ?? 'invalid-field';
}
