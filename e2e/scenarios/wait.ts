/** Bounded polling: every wait in the suite has a condition and a deadline, never a blind sleep. */

const POLL_MS = 100;

/**
 * Calls `read` until `done(value)` holds; returns that value. At the deadline, throws saying what
 * was awaited and the last value seen (errors from `read` count as "not yet").
 */
export async function waitFor<T>(
  what: string,
  read: () => Promise<T> | T,
  done: (value: T) => boolean,
  timeoutMs: number,
  pollMs = POLL_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = 'nothing read yet';
  for (;;) {
    try {
      const value = await read();
      if (done(value)) return value;
      last = value;
    } catch (err) {
      last = err instanceof Error ? err.message : err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last seen: ${JSON.stringify(last)?.slice(0, 400)}`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/** Resolves after `ms`: only for a duration that is itself the scenario (an outage held for 12 s). */
export function hold(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
