/**
 * Starts a suite's servers (etcds, kube-apiservers) at once, as `Promise.all` would, but when one
 * fails the ones that did start are stopped before the error is thrown: the suite's variables are
 * never assigned then, so its afterAll cannot stop them, and the processes would outlive the run.
 */
export type Stoppable = { stop(): Promise<void> } | { close(): Promise<void> };

export async function startAll<const T extends readonly (() => Promise<Stoppable>)[]>(
  ...starters: T
): Promise<{ -readonly [K in keyof T]: Awaited<ReturnType<T[K]>> }> {
  const results = await Promise.allSettled(starters.map((start) => start()));
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) {
    const started = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    await Promise.allSettled(started.map((server) => ('stop' in server ? server.stop() : server.close())));
    throw failure.reason;
  }
  return results.map((r) => (r as PromiseFulfilledResult<Stoppable>).value) as never;
}
