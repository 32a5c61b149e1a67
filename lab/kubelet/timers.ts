/**
 * The timers one pod worker or container has pending (restarts, probes, lease renewals, retries),
 * so that stopping it cancels all of them at once.
 */
export class PendingTimers {
  private readonly timers = new Set<NodeJS.Timeout>();

  /** Runs fn after ms unless clear() comes first. */
  later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  clear(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
