/**
 * Wire types of the agent's status API (`--status-addr`), shared by the agent that serves them and
 * the CLI that reads them (the two never import each other).
 */

/** `GET /identity?ip=`: the remote ipcache entry that owns an address. */
export interface IdentityRecord {
  /** the entry's canonical address, or `network/len` when it has a mask */
  prefix: string;
  cluster: string;
  clusterId: number;
  identity: number;
  /** Cilium's sorted label string ("k8s:app=echo;k8s:…;"); null when the peer published no such identity */
  labels: string | null;
  namespace: string;
  pod: string;
  hostIP: string;
}

/** `GET /status` → `services[]`: what the agent programmed for one global service, and why. */
export interface ServiceStatus {
  namespace: string;
  name: string;
  programmed: boolean;
  reason: string;
  warnings: string[];
  vips: string[];
  frontends: {
    vip: string;
    port: number;
    proto: string;
    decision: string;
    backends: { cluster: string; addr: string; port: number; state: string; reason: string }[];
  }[];
  remotes: { cluster: string; used: boolean; reason: string }[];
}
