/** When an exited container runs again, and after how long (CrashLoopBackOff). Pure. */

/**
 * The kubelet doubles 10 s up to 5 min; the lab starts at 1 s and stops at 60 s so that a
 * scenario that kills a pod's process does not wait minutes, while a crash loop still slows down.
 */
export const RESTART_BACKOFF = { initialMs: 1000, maxMs: 60_000 } as const;

/** A container that ran this long before exiting starts its backoff afresh. */
export const BACKOFF_RESET_AFTER_MS = 2 * RESTART_BACKOFF.maxMs;

export function shouldRestart(policy: string | undefined, exitCode: number): boolean {
  if (policy === 'Never') return false;
  if (policy === 'OnFailure') return exitCode !== 0;
  return true;
}

/** The delay before the next start, given how many times in a row it has been restarted quickly. */
export function restartDelayMs(quickRestarts: number): number {
  if (quickRestarts <= 0) return 0;
  return Math.min(RESTART_BACKOFF.initialMs * 2 ** (quickRestarts - 1), RESTART_BACKOFF.maxMs);
}

/** The quick-restart count after an exit: reset when the container had run long enough. */
export function nextQuickRestarts(quickRestarts: number, ranForMs: number): number {
  return ranForMs >= BACKOFF_RESET_AFTER_MS ? 1 : quickRestarts + 1;
}
