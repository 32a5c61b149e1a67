/** Input and output of the pure merge (DESIGN §4): local view + remote services + health → desired datapath state. */
import type { ClusterService, L4Protocol } from '../../lib/kvstore/types.js';
import type { BackendState, DatapathService } from '../../lib/datapath/types.js';
import type { ParseResult, ServicePolicy } from '../../lib/k8s/annotations.js';
import type { HealthLookup, ProbeTarget } from '../health/types.js';

export interface ServicePort {
  /** Kubernetes port name ("" for an unnamed single port): remote backends are matched by it */
  name: string;
  port: number;
  protocol: L4Protocol;
}

/** One address of an EndpointSlice endpoint, with its conditions. */
export interface LocalBackend {
  addr: string;
  /** port name → target port */
  ports: Record<string, number>;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
}

export interface LocalService {
  namespace: string;
  name: string;
  /** spec.clusterIPs (one per family); "None" (headless) or other non-addresses are ignored */
  clusterIPs: string[];
  ports: ServicePort[];
  /** from `parseServicePolicy` of the Service's annotations */
  policy: ParseResult<ServicePolicy>;
  localBackends: LocalBackend[];
}

export interface RemoteCluster {
  /** the ID from the peer's validated cluster config */
  id: number;
  services: ClusterService[];
}

export interface MergeInput {
  localCluster: { name: string; id: number };
  localServices: LocalService[];
  /** cluster name → its services (already validated on import, DESIGN §3) */
  remote: ReadonlyMap<string, RemoteCluster>;
  health: HealthLookup;
  /**
   * false: leave `explanations` empty. The agent's loop only needs the desired state and probe
   * list; at mesh scale the explanations are most of what a merge allocates (default true).
   */
  explain?: boolean;
}

export interface BackendExplanation {
  cluster: string;
  clusterId: number;
  addr: string;
  port: number;
  /** standby: a candidate the policy does not use right now; skipped: unusable for this frontend */
  state: BackendState | 'standby' | 'skipped';
  reason: string;
}

export interface FrontendExplanation {
  vip: string;
  port: number;
  proto: L4Protocol;
  portName: string;
  decision: string;
  backends: BackendExplanation[];
}

export interface RemoteExplanation {
  cluster: string;
  used: boolean;
  reason: string;
}

export interface ServiceExplanation {
  /** `<namespace>/<name>` */
  service: string;
  programmed: boolean;
  reason: string;
  warnings: string[];
  remotes: RemoteExplanation[];
  frontends: FrontendExplanation[];
}

export interface MergeResult {
  desired: DatapathService[];
  /** empty when the input said `explain: false` */
  explanations: ServiceExplanation[];
  /** local Services programmed (global, with a ClusterIP), counted with or without explanations */
  programmed: number;
  /** what the health checker should probe: the backends in use, and a few of those next in line (agent/health/probe-plan.ts) */
  probeTargets: ProbeTarget[];
}
