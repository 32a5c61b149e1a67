/**
 * Which backends of one frontend carry traffic: Cilium's affinity truth table, plus
 * min-healthy-local, an ordered cluster preference among remotes, and fail-open when every
 * candidate fails its health check.
 */
import type { BackendState } from '../../lib/datapath/types.js';
import type { ServicePolicy } from '../../lib/k8s/annotations.js';
import type { HealthStatus } from '../health/types.js';

export interface Candidate {
  cluster: string;
  /** 0 = local cluster, as in the datapath */
  clusterId: number;
  local: boolean;
  addr: string;
  port: number;
  /** a local endpoint that is terminating but still serving: kept for its open sockets, never selected */
  terminating: boolean;
  health: HealthStatus;
}

export interface Selected {
  candidate: Candidate;
  state: BackendState | 'standby';
  reason: string;
}

export interface Selection {
  decision: string;
  backends: Selected[];
  /**
   * The candidates that would carry the traffic if every chosen one failed (the health checker
   * probes a few of them ahead): the next group in the policy's order, and past it, while a
   * group's every backend is known unhealthy, the group after.
   */
  next: Candidate[];
}

type Healthy = (c: Candidate) => boolean;

/** `unknown` counts as healthy: a new backend is trusted on Kubernetes readiness until a probe says otherwise. */
const probedHealthy: Healthy = (c) => c.health !== 'unhealthy';
const ignoreHealth: Healthy = () => true;

interface Sides {
  local: boolean;
  remote: boolean;
  why: string;
}

function chooseSides(policy: ServicePolicy, healthyLocal: number, healthyRemote: number): Sides {
  switch (policy.affinity) {
    case 'none':
      return { local: true, remote: true, why: 'affinity none: all clusters' };
    case 'local':
      return healthyLocal >= policy.minHealthyLocal
        ? {
            local: true,
            remote: false,
            why: `affinity local: ${healthyLocal} healthy local ≥ min-healthy-local ${policy.minHealthyLocal}`,
          }
        : {
            local: true,
            remote: true,
            why: `affinity local: ${healthyLocal} healthy local < min-healthy-local ${policy.minHealthyLocal}, remote added`,
          };
    case 'remote':
      return healthyRemote > 0
        ? { local: false, remote: true, why: `affinity remote: ${healthyRemote} healthy remote` }
        : { local: true, remote: true, why: 'affinity remote: no healthy remote, local used' };
  }
}

/** The first listed cluster with a healthy backend; else the unlisted clusters; else (nothing healthy) all. */
function preferredRemotes(
  remote: Candidate[],
  preference: string[],
  healthy: Healthy,
): { use: Candidate[]; why: string } {
  if (preference.length === 0) return { use: remote, why: '' };
  for (const cluster of preference) {
    const group = remote.filter((c) => c.cluster === cluster);
    if (group.some(healthy)) return { use: group, why: `preferred cluster ${cluster}` };
  }
  const unlisted = remote.filter((c) => !preference.includes(c.cluster));
  if (unlisted.some(healthy))
    return { use: unlisted, why: 'no preferred cluster healthy: unlisted clusters' };
  return { use: remote, why: 'no remote cluster healthy' };
}

function choose(
  candidates: Candidate[],
  policy: ServicePolicy,
  healthy: Healthy,
): { chosen: Set<Candidate>; sides: Sides; remoteWhy: string } {
  const ready = candidates.filter((c) => !c.terminating);
  const local = ready.filter((c) => c.local);
  const remote = ready.filter((c) => !c.local);
  const sides = chooseSides(policy, local.filter(healthy).length, remote.filter(healthy).length);
  const remotes = sides.remote
    ? preferredRemotes(remote, policy.clusterPreference, healthy)
    : { use: [], why: '' };
  return { chosen: new Set([...(sides.local ? local : []), ...remotes.use]), sides, remoteWhy: remotes.why };
}

function standbyReason(c: Candidate, sides: Sides, remoteWhy: string): string {
  const sideUsed = c.local ? sides.local : sides.remote;
  return sideUsed ? remoteWhy : sides.why;
}

/**
 * Chooses again with every chosen candidate out, probe verdicts set aside so that the answer does
 * not flip as the probes of standby backends come and go; a group whose backends all failed their
 * probes is passed over as the real selection would, keeping its place in the answer (its probes
 * go on, and it is first again once one recovers).
 */
function nextInLine(candidates: Candidate[], policy: ServicePolicy, chosen: Set<Candidate>): Candidate[] {
  const out = new Set(chosen);
  const next: Candidate[] = [];
  for (;;) {
    const group = [...choose(candidates, policy, (c) => !out.has(c)).chosen].filter((c) => !out.has(c));
    next.push(...group);
    if (group.length === 0 || group.some(probedHealthy)) return next;
    for (const c of group) out.add(c);
  }
}

export function selectBackends(candidates: Candidate[], policy: ServicePolicy): Selection {
  let healthy = probedHealthy;
  let { chosen, sides, remoteWhy } = choose(candidates, policy, healthy);
  let failOpen = '';
  if (chosen.size > 0 && ![...chosen].some(healthy)) {
    // A checker that cannot reach anything (probes filtered, node network trouble) must not black-hole
    // a Service whose backends Kubernetes still calls ready: fall back to readiness alone.
    healthy = ignoreHealth;
    ({ chosen, sides, remoteWhy } = choose(candidates, policy, healthy));
    failOpen = 'every chosen backend failed its health check, health ignored (fail open); ';
  }
  const decision = failOpen + [sides.why, remoteWhy].filter(Boolean).join('; ');
  const backends = candidates.map((candidate): Selected => {
    if (candidate.terminating)
      return { candidate, state: 'terminating', reason: 'terminating, still serving' };
    if (!chosen.has(candidate))
      return { candidate, state: 'standby', reason: standbyReason(candidate, sides, remoteWhy) };
    if (healthy(candidate)) return { candidate, state: 'active', reason: `health ${candidate.health}` };
    return { candidate, state: 'quarantined', reason: 'failed its health check' };
  });
  return { decision, backends, next: nextInLine(candidates, policy, chosen) };
}
