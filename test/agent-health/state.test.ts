import {
  DEFAULT_PEER_CACHE_TTL_MS,
  HealthChecker,
  INITIAL_STATE,
  nextState,
  peerRetention,
  type TargetState,
} from '../../agent/health/index.js';

type Outcome = 'up' | 'refused' | 'down';
const thresholds = { failureThreshold: 2, successThreshold: 2 };

function run(outcomes: Outcome[], from: TargetState = INITIAL_STATE): string[] {
  const statuses: string[] = [];
  let state = from;
  for (const outcome of outcomes) {
    state = nextState(state, outcome, thresholds);
    statuses.push(state.status);
  }
  return statuses;
}

describe('nextState (failure threshold 2, success threshold 2)', () => {
  it.each<[string, Outcome[], string[]]>([
    ['first success from unknown is enough', ['up'], ['healthy']],
    ['refused quarantines at once', ['up', 'refused'], ['healthy', 'unhealthy']],
    ['refused quarantines an unknown target at once', ['refused'], ['unhealthy']],
    ['one timeout is tolerated, two are not', ['up', 'down', 'down'], ['healthy', 'healthy', 'unhealthy']],
    [
      'a success resets the failure count',
      ['up', 'down', 'up', 'down'],
      ['healthy', 'healthy', 'healthy', 'healthy'],
    ],
    ['recovery needs two successes in a row', ['refused', 'up', 'up'], ['unhealthy', 'unhealthy', 'healthy']],
    [
      'a failure resets the success count',
      ['refused', 'up', 'down', 'up', 'up'],
      ['unhealthy', 'unhealthy', 'unhealthy', 'unhealthy', 'healthy'],
    ],
    ['timeouts from unknown stay unknown until the threshold', ['down', 'down'], ['unknown', 'unhealthy']],
  ])('%s', (_name, outcomes, expected) => {
    expect(run(outcomes)).toEqual(expected);
  });
});

describe('peerRetention (cache TTL for a silent peer)', () => {
  const ttl = 60_000;
  it.each([
    ['connected', { kind: 'connected' as const }, 1_000, true, undefined],
    [
      'disconnected, within the TTL',
      { kind: 'disconnected' as const, sinceMs: 10_000 },
      69_999,
      true,
      70_000,
    ],
    [
      'disconnected, TTL reached',
      { kind: 'disconnected' as const, sinceMs: 10_000 },
      70_000,
      false,
      undefined,
    ],
    ['removed: drained at once', { kind: 'removed' as const }, 0, false, undefined],
  ])('%s', (_name, link, now, keep, recheckAt) => {
    const retention = peerRetention(link, ttl, now);
    expect(retention.keepBackends).toBe(keep);
    expect(retention.recheckAtMs).toBe(recheckAt);
  });

  it('a TTL of 0 drops a disconnected peer at once', () => {
    expect(peerRetention({ kind: 'disconnected', sinceMs: 5 }, 0, 5).keepBackends).toBe(false);
  });

  it('has a finite default', () => {
    expect(Number.isFinite(DEFAULT_PEER_CACHE_TTL_MS) && DEFAULT_PEER_CACHE_TTL_MS > 0).toBe(true);
  });
});

describe('HealthChecker options', () => {
  it.each([{ intervalMs: 0 }, { timeoutMs: 1.5 }, { maxConcurrentProbes: -1 }])(
    'rejects %j with a clear error',
    (options) => {
      expect(() => new HealthChecker(options)).toThrow(
        /^health checker option \w+ must be a positive integer/,
      );
    },
  );

  it('reports unknown for a target it does not probe', () => {
    const checker = new HealthChecker();
    expect(checker.status({ clusterId: 0, addr: '127.0.0.1', port: 1 })).toBe('unknown');
    checker.close();
  });
});
