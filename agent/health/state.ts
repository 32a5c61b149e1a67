/** The pure state machine of one target: probe outcomes in, health status out. */
import type { ProbeOutcome } from './probe.js';
import type { HealthStatus } from './types.js';

export interface Thresholds {
  /** consecutive failed probes (timeouts, errors) that make a target unhealthy */
  failureThreshold: number;
  /** consecutive successes that make an unhealthy target healthy again */
  successThreshold: number;
}

export interface TargetState {
  status: HealthStatus;
  failures: number;
  successes: number;
}

export const INITIAL_STATE: TargetState = { status: 'unknown', failures: 0, successes: 0 };

/**
 * A refused connection is a definitive answer (the host is up, nothing listens: the process died),
 * so it quarantines at once; a silent timeout may be one lost SYN, so it needs the threshold.
 * From `unknown` the first success is enough: the merge already trusts an unknown backend.
 */
export function nextState(state: TargetState, outcome: ProbeOutcome['result'], t: Thresholds): TargetState {
  if (outcome === 'up') {
    const successes = state.successes + 1;
    const recovered = state.status !== 'unhealthy' || successes >= t.successThreshold;
    return { status: recovered ? 'healthy' : 'unhealthy', failures: 0, successes };
  }
  const failures = state.failures + 1;
  const failed = outcome === 'refused' || failures >= t.failureThreshold;
  return { status: failed ? 'unhealthy' : state.status, failures, successes: 0 };
}
