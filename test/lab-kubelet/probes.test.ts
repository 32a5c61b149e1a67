import type { V1Container } from '@kubernetes/client-node';
import { initialProbeState, nextProbeState, probeAction, probeTiming } from '../../lab/kubelet/probes.js';
import { nextQuickRestarts, restartDelayMs, shouldRestart } from '../../lab/kubelet/restart.js';

const container: V1Container = { name: 'c', ports: [{ name: 'health', containerPort: 9879 }, { name: 'etcd', containerPort: 2379 }] };

describe('probeAction', () => {
  it.each([
    { what: 'httpGet on a named port, default host = pod IP', probe: { httpGet: { path: '/readyz', port: 'health' } }, action: { kind: 'http', url: 'http://10.1.0.2:9879/readyz', headers: {} } },
    { what: 'httpGet with host and numeric port', probe: { httpGet: { host: '127.0.0.1', path: '/healthz', port: 80 } }, action: { kind: 'http', url: 'http://127.0.0.1:80/healthz', headers: {} } },
    { what: 'httpGet with a numeric string port and no path', probe: { httpGet: { port: '8080' } }, action: { kind: 'http', url: 'http://10.1.0.2:8080/', headers: {} } },
    { what: 'httpGet HTTPS with headers', probe: { httpGet: { scheme: 'HTTPS', path: 'x', port: 443, httpHeaders: [{ name: 'X-A', value: 'b' }] } }, action: { kind: 'http', url: 'https://10.1.0.2:443/x', headers: { 'X-A': 'b' } } },
    { what: 'httpGet to an IPv6 host', probe: { httpGet: { host: 'fd99::1', path: '/', port: 1 } }, action: { kind: 'http', url: 'http://[fd99::1]:1/', headers: {} } },
    { what: 'tcpSocket on a named port', probe: { tcpSocket: { port: 'etcd' } }, action: { kind: 'tcp', host: '10.1.0.2', port: 2379 } },
    { what: 'exec', probe: { exec: { command: ['cat', '/tmp/ok'] } }, action: { kind: 'exec', command: ['cat', '/tmp/ok'] } },
  ])('$what', ({ probe, action }) => expect(probeAction(probe as never, container, '10.1.0.2')).toEqual({ ok: true, value: action }));

  it.each([
    [{ httpGet: { port: 'nope' } }, 'container c has no port named nope'],
    [{ tcpSocket: { port: 'nope' } }, 'container c has no port named nope'],
    [{ grpc: { port: 1 } }, expect.stringContaining('only exec, httpGet and tcpSocket')],
  ])('refuses %j', (probe, message) => expect(probeAction(probe as never, container, '10.1.0.2')).toEqual({ ok: false, message }));
});

describe('probeTiming', () => {
  it('API defaults', () => {
    expect(probeTiming({})).toEqual({ initialDelayMs: 0, periodMs: 10_000, timeoutMs: 1000, successThreshold: 1, failureThreshold: 3 });
  });
  it('given values', () => {
    expect(probeTiming({ initialDelaySeconds: 2, periodSeconds: 5, timeoutSeconds: 3, successThreshold: 2, failureThreshold: 6 })).toEqual({
      initialDelayMs: 2000,
      periodMs: 5000,
      timeoutMs: 3000,
      successThreshold: 2,
      failureThreshold: 6,
    });
  });
});

describe('nextProbeState', () => {
  const timing = probeTiming({ successThreshold: 2, failureThreshold: 3 });
  const run = (start: boolean, results: boolean[]) => results.reduce((s, r) => nextProbeState(s, r, timing), initialProbeState(start)).passing;

  it.each([
    { start: false, results: [true], passing: false },
    { start: false, results: [true, true], passing: true },
    { start: false, results: [true, false, true], passing: false },
    { start: true, results: [false, false], passing: true },
    { start: true, results: [false, false, false], passing: false },
    { start: true, results: [false, false, true, false, false], passing: true },
    { start: false, results: [true, true, false, false, false, true], passing: false },
  ])('$start then $results → $passing', ({ start, results, passing }) => expect(run(start, results)).toBe(passing));
});

describe('restarts', () => {
  it.each([
    ['Always', 0, true],
    ['Always', 1, true],
    [undefined, 0, true],
    ['OnFailure', 0, false],
    ['OnFailure', 137, true],
    ['Never', 1, false],
  ])('policy %s, exit %d → restart %s', (policy, code, again) => expect(shouldRestart(policy, code)).toBe(again));

  it.each([
    [0, 0],
    [1, 1000],
    [2, 2000],
    [3, 4000],
    [6, 32_000],
    [7, 60_000],
    [20, 60_000],
  ])('after %d quick restarts: %d ms', (n, ms) => expect(restartDelayMs(n)).toBe(ms));

  it.each([
    [0, 5, 1],
    [3, 5_000, 4],
    [6, 119_999, 7],
    [6, 120_000, 1],
  ])('%d quick restarts, then ran %d ms → %d', (before, ran, after) => expect(nextQuickRestarts(before, ran)).toBe(after));
});
