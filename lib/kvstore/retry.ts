/** The one retry policy of the kvstore stores: exponential backoff, forever, until aborted. */
import { setMaxListeners } from 'node:events';
import pRetry, { type FailedAttemptError } from 'p-retry';
import type { Logger } from 'pino';
import { classifyEtcdError } from './etcd.js';

export interface BackoffOptions {
  minTimeoutMs?: number;
  maxTimeoutMs?: number;
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = { minTimeoutMs: 50, maxTimeoutMs: 5_000 };

/**
 * Runs `attempt` until it succeeds or `signal` aborts (then rejects with the abort reason).
 * etcd outages are transient by nature here: a store has nothing better to do than wait.
 */
export function retryUntilAborted<T>(
  attempt: () => Promise<T>,
  signal: AbortSignal,
  onFailedAttempt: (err: FailedAttemptError) => void,
  backoff: BackoffOptions = {},
): Promise<T> {
  return pRetry(attempt, {
    forever: true,
    factor: 2,
    randomize: true,
    minTimeout: backoff.minTimeoutMs ?? DEFAULT_BACKOFF.minTimeoutMs,
    maxTimeout: backoff.maxTimeoutMs ?? DEFAULT_BACKOFF.maxTimeoutMs,
    signal,
    // A store stopped mid-request fails that request; that is not worth a warning.
    onFailedAttempt: (err) => {
      if (!signal.aborted) onFailedAttempt(err);
    },
  });
}

/** The stop switch of a store: every concurrent retry listens to it, so no listener cap. */
export function createStopController(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}

/** What a store shares with its etcd retries: the stop switch, where to count and report failures. */
export interface EtcdRetryContext {
  signal: AbortSignal;
  /** `errors` counts every failed attempt */
  counters: { errors: number };
  backoff?: BackoffOptions;
  logger?: Logger;
  /** endpoints, only to word error messages */
  endpoints?: string[];
}

/**
 * An etcd op of a store, retried until it succeeds or the store stops. Each failed attempt is
 * counted and logged at warn with the classifier's one-line reason, `fields` saying which op.
 */
export function retryEtcdOp<T>(
  context: EtcdRetryContext,
  fields: Record<string, unknown>,
  attempt: () => Promise<T>,
): Promise<T> {
  return retryUntilAborted(
    attempt,
    context.signal,
    (err) => {
      context.counters.errors++;
      const failure = classifyEtcdError(err, context.endpoints ?? []);
      context.logger?.warn({ ...fields, attempt: err.attemptNumber, kind: failure.kind }, failure.message);
    },
    context.backoff,
  );
}
