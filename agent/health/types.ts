/**
 * What the health checker probes and reports. A target is a backend exactly as the desired datapath
 * state names it (`clusterId` 0 = the local cluster), so the agent can feed the merge's probe list
 * straight into the checker.
 */
export interface HealthTarget {
  clusterId: number;
  addr: string;
  port: number;
}

/** `unknown`: not probed yet (or not a target); the merge trusts Kubernetes readiness then. */
export type HealthStatus = 'healthy' | 'unhealthy' | 'unknown';

export type HealthLookup = (clusterId: number, addr: string, port: number) => HealthStatus;

export function targetKey(t: HealthTarget): string {
  return `${t.clusterId}|${t.addr}|${t.port}`;
}
