/**
 * Probes and handlers (readiness, liveness, startup; preStop): what to check and how results
 * become a probe's state. Pure; lab/kubelet/runtime.ts performs the checks.
 */
import type { V1Container, V1LifecycleHandler, V1Probe } from '@kubernetes/client-node';

export type ProbeAction =
  | { kind: 'http'; url: string; headers: Record<string, string> }
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'exec'; command: string[] };

export type Resolved<T> = { ok: true; value: T } | { ok: false; message: string };

function portNumber(port: number | string | undefined, container: V1Container): Resolved<number> {
  if (typeof port === 'number') return { ok: true, value: port };
  if (port !== undefined && /^\d+$/.test(port)) return { ok: true, value: Number(port) };
  const named = container.ports?.find((p) => p.name === port);
  if (named) return { ok: true, value: named.containerPort };
  return { ok: false, message: `container ${container.name} has no port named ${port}` };
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** The check a probe or handler asks for; `podIP` is the default host (the node's for hostNetwork). */
export function probeAction(
  probe: V1Probe | V1LifecycleHandler,
  container: V1Container,
  podIP: string,
): Resolved<ProbeAction> {
  if (probe.exec) return { ok: true, value: { kind: 'exec', command: probe.exec.command ?? [] } };
  if (probe.httpGet) {
    const port = portNumber(probe.httpGet.port as number | string, container);
    if (!port.ok) return port;
    const scheme = (probe.httpGet.scheme ?? 'HTTP').toLowerCase();
    const path = probe.httpGet.path ?? '/';
    const host = hostForUrl(probe.httpGet.host || podIP);
    const headers = Object.fromEntries((probe.httpGet.httpHeaders ?? []).map((h) => [h.name, h.value]));
    return {
      ok: true,
      value: { kind: 'http', url: `${scheme}://${host}:${port.value}${path.startsWith('/') ? '' : '/'}${path}`, headers },
    };
  }
  if (probe.tcpSocket) {
    const port = portNumber(probe.tcpSocket.port as number | string, container);
    if (!port.ok) return port;
    return { ok: true, value: { kind: 'tcp', host: probe.tcpSocket.host || podIP, port: port.value } };
  }
  return { ok: false, message: `container ${container.name}: only exec, httpGet and tcpSocket probes are supported` };
}

export interface ProbeTiming {
  initialDelayMs: number;
  periodMs: number;
  timeoutMs: number;
  successThreshold: number;
  failureThreshold: number;
}

/** The API's defaults (initialDelay 0, period 10 s, timeout 1 s, success 1, failure 3). */
export function probeTiming(probe: V1Probe): ProbeTiming {
  return {
    initialDelayMs: (probe.initialDelaySeconds ?? 0) * 1000,
    periodMs: (probe.periodSeconds ?? 10) * 1000,
    timeoutMs: (probe.timeoutSeconds ?? 1) * 1000,
    successThreshold: probe.successThreshold ?? 1,
    failureThreshold: probe.failureThreshold ?? 3,
  };
}

export interface ProbeState {
  /** the probe's verdict; starts as `initial` */
  passing: boolean;
  successes: number;
  failures: number;
}

export function initialProbeState(passing: boolean): ProbeState {
  return { passing, successes: 0, failures: 0 };
}

/** One result: the verdict flips after successThreshold successes or failureThreshold failures in a row. */
export function nextProbeState(state: ProbeState, succeeded: boolean, timing: ProbeTiming): ProbeState {
  const successes = succeeded ? state.successes + 1 : 0;
  const failures = succeeded ? 0 : state.failures + 1;
  let passing = state.passing;
  if (succeeded && successes >= timing.successThreshold) passing = true;
  if (!succeeded && failures >= timing.failureThreshold) passing = false;
  return { passing, successes, failures };
}
