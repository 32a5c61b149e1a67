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

/**
 * A target of the probe plan. `standby`: a backend no service uses now but one would use next if
 * what it uses failed; standby targets are probed with what the probe rate leaves after the
 * targets in use, so they never slow the probes that bound an abrupt failover.
 */
export interface ProbeTarget extends HealthTarget {
  standby?: true;
}

/** `unknown`: not probed yet (or not a target); the merge trusts Kubernetes readiness then. */
export type HealthStatus = 'healthy' | 'unhealthy' | 'unknown';

export type HealthLookup = (clusterId: number, addr: string, port: number) => HealthStatus;

/**
 * One probe per address:port on this node, whichever services and clusters name it: whether it
 * accepts connections is the same answer for all of them.
 */
export function targetKey(t: { addr: string; port: number }): string {
  return `${t.addr}|${t.port}`;
}
