/**
 * The desired state of the socket-LB datapath (DESIGN §5): what the agent's merge produces and
 * what the datapath module makes the pinned maps equal to.
 */
import type { L4Protocol } from '../kvstore/types.js';

/** Selection only ever picks `active` backends; the others stay in the maps after the active slots. */
export type BackendState = 'active' | 'terminating' | 'quarantined' | 'maintenance';

export interface DatapathBackend {
  /** IPv4 or IPv6 address, same family as the service's VIP */
  addr: string;
  port: number;
  state: BackendState;
  /** 0 = local cluster */
  clusterId: number;
}

export interface DatapathService {
  /** the frontend: ClusterIP (IPv4 or IPv6) */
  vip: string;
  port: number;
  proto: L4Protocol;
  backends: DatapathBackend[];
}
