/**
 * The pure merge (DESIGN §4): remote backends of `<ns>/<name>` join the local Service of the same
 * namespace and name, on the local ClusterIP(s), matched by port name and protocol. Only global
 * local Services are programmed (DESIGN §5: the others stay with the cluster's own load balancer),
 * and a remote cluster contributes only when its Service is global and shared.
 */
import { isIP } from 'node:net';
import type { ClusterService } from '../../lib/kvstore/types.js';
import type { BackendState, DatapathBackend, DatapathService } from '../../lib/datapath/types.js';
import type { ServicePolicy } from '../../lib/k8s/annotations.js';
import { planProbes, type FrontendProbes } from '../health/probe-plan.js';
import type { HealthTarget } from '../health/types.js';
import { selectBackends, type Candidate, type Selected, type Selection } from './select.js';
import type {
  BackendExplanation,
  FrontendExplanation,
  LocalService,
  MergeInput,
  MergeResult,
  RemoteExplanation,
  ServiceExplanation,
  ServicePort,
} from './types.js';

const LOCAL_CLUSTER_ID = 0;

interface RemoteEntry {
  cluster: string;
  clusterId: number;
  service: ClusterService;
}

/** What a frontend could use, and what it could not with the reason (for the status API). */
interface Candidates {
  usable: Candidate[];
  skipped: BackendExplanation[];
}

/** Code-point order, not the locale's: the output must not depend on the machine it runs on. */
const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const serviceKey = (namespace: string, name: string): string => `${namespace}/${name}`;

function indexRemoteServices(input: MergeInput): Map<string, RemoteEntry[]> {
  const index = new Map<string, RemoteEntry[]>();
  const clusters = [...input.remote.entries()].sort(([a], [b]) => compare(a, b));
  for (const [cluster, { id, services }] of clusters) {
    for (const service of services) {
      const key = serviceKey(service.namespace, service.name);
      const entries = index.get(key) ?? [];
      entries.push({ cluster, clusterId: id, service });
      index.set(key, entries);
    }
  }
  return index;
}

function remoteUse(entry: RemoteEntry, localClusterName: string): RemoteExplanation {
  const { cluster, service } = entry;
  if (cluster === localClusterName) return { cluster, used: false, reason: 'claims the local cluster name' };
  if (!service.includeExternal) return { cluster, used: false, reason: 'not global in that cluster' };
  if (!service.shared) return { cluster, used: false, reason: 'not shared by that cluster (shared: false)' };
  return { cluster, used: true, reason: 'global and shared' };
}

const sameFamily = (a: string, b: string): boolean => isIP(a) === isIP(b);

function skip(
  cluster: string,
  clusterId: number,
  addr: string,
  port: number,
  reason: string,
): BackendExplanation {
  return { cluster, clusterId, addr, port, state: 'skipped', reason };
}

function localCandidates(
  input: MergeInput,
  svc: LocalService,
  vip: string,
  port: ServicePort,
  out: Candidates,
): void {
  const cluster = input.localCluster.name;
  for (const b of svc.localBackends) {
    const target = b.ports[port.name];
    if (target === undefined) continue; // an endpoint lists only the ports of its own slice
    if (!sameFamily(b.addr, vip)) continue; // the other family's slice: not a candidate, not an anomaly
    if (!b.ready && !(b.terminating && b.serving)) {
      out.skipped.push(skip(cluster, LOCAL_CLUSTER_ID, b.addr, target, 'not ready'));
      continue;
    }
    const terminating = !b.ready;
    const health = input.health(LOCAL_CLUSTER_ID, b.addr, target);
    out.usable.push({
      cluster,
      clusterId: LOCAL_CLUSTER_ID,
      local: true,
      addr: b.addr,
      port: target,
      terminating,
      health,
    });
  }
}

function remoteCandidates(
  input: MergeInput,
  remotes: RemoteEntry[],
  vip: string,
  port: ServicePort,
  out: Candidates,
): void {
  for (const { cluster, clusterId, service } of remotes) {
    for (const [addr, ports] of Object.entries(service.backends)) {
      const remotePort = ports[port.name];
      if (remotePort === undefined) continue;
      if (remotePort.Protocol !== port.protocol) {
        out.skipped.push(
          skip(
            cluster,
            clusterId,
            addr,
            remotePort.Port,
            `protocol ${remotePort.Protocol} ≠ ${port.protocol}`,
          ),
        );
      } else if (!sameFamily(addr, vip)) {
        out.skipped.push(
          skip(cluster, clusterId, addr, remotePort.Port, `address family differs from VIP ${vip}`),
        );
      } else {
        const health = input.health(clusterId, addr, remotePort.Port);
        out.usable.push({
          cluster,
          clusterId,
          local: false,
          addr,
          port: remotePort.Port,
          terminating: false,
          health,
        });
      }
    }
  }
}

/** Local first, then clusters by name: the first claim on an address:port wins, later ones are reported. */
function withoutDuplicates(candidates: Candidates): Candidates {
  const seen = new Map<string, string>();
  const usable: Candidate[] = [];
  const skipped = [...candidates.skipped];
  for (const c of candidates.usable) {
    const key = `${c.addr}|${c.port}`;
    const owner = seen.get(key);
    if (owner === undefined) {
      seen.set(key, c.cluster);
      usable.push(c);
    } else {
      skipped.push(
        skip(c.cluster, c.clusterId, c.addr, c.port, `duplicate of a backend of cluster ${owner}`),
      );
    }
  }
  return { usable, skipped };
}

const isProgrammed = (s: Selected): s is Selected & { state: BackendState } => s.state !== 'standby';

function byBackendOrder(a: { clusterId: number; addr: string; port: number }, b: typeof a): number {
  return a.clusterId - b.clusterId || compare(a.addr, b.addr) || a.port - b.port;
}

interface MergedFrontend {
  service: DatapathService;
  /** null when the input did not ask for explanations */
  explanation: FrontendExplanation | null;
  probes: FrontendProbes;
}

function explainFrontend(
  vip: string,
  port: ServicePort,
  selection: Selection,
  skipped: BackendExplanation[],
): FrontendExplanation {
  const explained: BackendExplanation[] = selection.backends.map(({ candidate: c, state, reason }) => ({
    cluster: c.cluster,
    clusterId: c.clusterId,
    addr: c.addr,
    port: c.port,
    state,
    reason,
  }));
  return {
    vip,
    port: port.port,
    proto: port.protocol,
    portName: port.name,
    decision: selection.decision,
    backends: [...explained, ...skipped].sort(byBackendOrder),
  };
}

function mergeFrontend(
  input: MergeInput,
  svc: LocalService,
  policy: ServicePolicy,
  remotes: RemoteEntry[],
  vip: string,
  port: ServicePort,
): MergedFrontend {
  const found: Candidates = { usable: [], skipped: [] };
  localCandidates(input, svc, vip, port, found);
  remoteCandidates(input, remotes, vip, port, found);
  const { usable, skipped } = withoutDuplicates(found);
  const selection = selectBackends(usable, policy);
  const backends = selection.backends
    .filter(isProgrammed)
    .map(({ candidate: c, state }): DatapathBackend => ({
      addr: c.addr,
      port: c.port,
      state,
      clusterId: c.clusterId,
    }))
    .sort(byBackendOrder);
  return {
    service: { vip, port: port.port, proto: port.protocol, backends },
    explanation: input.explain === false ? null : explainFrontend(vip, port, selection, skipped),
    probes: {
      used: selection.backends
        .filter((s) => s.state === 'active' || s.state === 'quarantined')
        .map(({ candidate }) => healthTarget(candidate)),
      next: selection.next.map(healthTarget),
    },
  };
}

const healthTarget = ({ clusterId, addr, port }: Candidate): HealthTarget => ({ clusterId, addr, port });

function describePolicy(p: ServicePolicy): string {
  const parts = [`shared ${p.shared}`, `affinity ${p.affinity}`];
  if (p.affinity === 'local') parts.push(`min-healthy-local ${p.minHealthyLocal}`);
  if (p.clusterPreference.length > 0) parts.push(`preference ${p.clusterPreference.join(',')}`);
  return `global (${parts.join(', ')})`;
}

function notProgrammed(service: string, reason: string, warnings: string[] = []): ServiceExplanation {
  return { service, programmed: false, reason, warnings, remotes: [], frontends: [] };
}

export function mergeServices(input: MergeInput): MergeResult {
  const remoteIndex = indexRemoteServices(input);
  const explain = input.explain !== false;
  const desired: DatapathService[] = [];
  const explanations: ServiceExplanation[] = [];
  const probes: FrontendProbes[] = [];
  let programmed = 0;
  const unprogrammed = (explanation: () => ServiceExplanation): void => {
    if (explain) explanations.push(explanation());
  };

  for (const svc of input.localServices) {
    const name = serviceKey(svc.namespace, svc.name);
    if (!svc.policy.ok) {
      const { error } = svc.policy;
      unprogrammed(() => notProgrammed(name, `annotation error, treated as not global: ${error}`));
      continue;
    }
    const { value: policy, warnings } = svc.policy;
    if (!policy.global) {
      unprogrammed(() => notProgrammed(name, 'not global: left to the cluster’s own load balancer', warnings));
      continue;
    }
    const vips = svc.clusterIPs.filter((ip) => isIP(ip) !== 0);
    if (vips.length === 0) {
      unprogrammed(() => notProgrammed(name, 'global but has no ClusterIP (headless): nothing to program', warnings));
      continue;
    }
    const remotes = (remoteIndex.get(name) ?? []).map((entry) => ({
      entry,
      use: remoteUse(entry, input.localCluster.name),
    }));
    const usableRemotes = remotes.filter((r) => r.use.used).map((r) => r.entry);
    const frontends: FrontendExplanation[] = [];
    for (const vip of vips) {
      for (const port of svc.ports) {
        const merged = mergeFrontend(input, svc, policy, usableRemotes, vip, port);
        desired.push(merged.service);
        if (merged.explanation) frontends.push(merged.explanation);
        probes.push(merged.probes);
      }
    }
    programmed++;
    if (!explain) continue;
    explanations.push({
      service: name,
      programmed: true,
      reason: describePolicy(policy),
      warnings,
      remotes: remotes.map((r) => r.use),
      frontends,
    });
  }

  desired.sort((a, b) => compare(a.vip, b.vip) || a.port - b.port || compare(a.proto, b.proto));
  explanations.sort((a, b) => compare(a.service, b.service));
  return { desired, explanations, programmed, probeTargets: planProbes(probes) };
}
