/**
 * What the health checker probes (pure): every backend a frontend uses now, and a bounded few of
 * those it would use next, each address:port once. At mesh scale most remote backends stand by
 * behind healthy local ones (affinity local) or a preferred cluster; probing all of them would
 * stretch every target's interval past the failover budget (one probe per target every
 * targets ÷ rate seconds), so those neither used nor next in line are not probed at all: they
 * become next in line, then used, as the selection moves (agent/merge/select.ts).
 */
import { targetKey, type HealthTarget, type ProbeTarget } from './types.js';

/** The backends of one frontend (VIP:port) as the selection sees them. */
export interface FrontendProbes {
  /** chosen now (active or quarantined): a quarantined one is probed to come back */
  used: readonly HealthTarget[];
  /** what would carry the traffic if every used one failed, in the selection's order */
  next: readonly HealthTarget[];
}

/**
 * Next-in-line backends probed per frontend. Enough to know whether the group failover would land
 * on answers at all (the selection trusts an unprobed backend on readiness, and probes it as soon
 * as it is used); 8 × a few thousand frontends stays within what the probe rate covers.
 */
export const NEXT_PROBES_PER_FRONTEND = 8;

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function byTarget(a: HealthTarget, b: HealthTarget): number {
  return a.clusterId - b.clusterId || compare(a.addr, b.addr) || a.port - b.port;
}

/**
 * In-use targets first and whole; then, per frontend, its first `nextPerFrontend` next-in-line
 * targets that no frontend uses, marked standby. The first claim on an address:port names it.
 */
export function planProbes(
  frontends: Iterable<FrontendProbes>,
  nextPerFrontend = NEXT_PROBES_PER_FRONTEND,
): ProbeTarget[] {
  const inUse = new Map<string, ProbeTarget>();
  const all = [...frontends];
  for (const { used } of all) {
    for (const t of used) {
      const key = targetKey(t);
      if (!inUse.has(key)) inUse.set(key, { clusterId: t.clusterId, addr: t.addr, port: t.port });
    }
  }
  const standby = new Map<string, ProbeTarget>();
  for (const { next } of all) {
    let taken = 0;
    for (const t of next) {
      if (taken >= nextPerFrontend) break;
      const key = targetKey(t);
      if (inUse.has(key)) continue;
      taken++;
      if (!standby.has(key)) standby.set(key, { clusterId: t.clusterId, addr: t.addr, port: t.port, standby: true });
    }
  }
  return [...inUse.values(), ...standby.values()].sort((a, b) => byTarget(a, b));
}
