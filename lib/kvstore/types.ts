/**
 * Records of the kvstore schema (DESIGN §3), wire-compatible with Cilium ClusterMesh v1.
 * Field names are the JSON field names on the wire: do not rename them.
 */

export type L4Protocol = 'TCP' | 'UDP';

/** A named port as Cilium writes it: `{"http":{"Protocol":"TCP","Port":80}}`. */
export interface PortConfiguration {
  Protocol: L4Protocol;
  Port: number;
}

/** port name → port. */
export type PortMap = Record<string, PortConfiguration>;

/** `cilium/state/services/v1/<cluster>/<ns>/<name>` */
export interface ClusterService {
  cluster: string;
  namespace: string;
  name: string;
  /** frontend IP → ports */
  frontends: Record<string, PortMap>;
  /** backend IP → ports (only ready-or-serving endpoints) */
  backends: Record<string, PortMap>;
  labels: Record<string, string>;
  selector: Record<string, string>;
  includeExternal: boolean;
  shared: boolean;
  clusterID: number;
}

/** `cilium/cluster-config/<cluster>` */
export interface ClusterConfig {
  id: number;
  capabilities: {
    syncedCanaries: boolean;
    maxConnectedClusters: number;
    /** Republished by a kvstoremesh: read this peer under `cilium/cache/…` of the same etcd. */
    cached?: boolean;
  };
}

export interface NodeAddress {
  Type: 'InternalIP' | 'ExternalIP' | 'CiliumInternalIP';
  IP: string;
}

/** `cilium/state/nodes/v1/<cluster>/<node>` */
export interface NodeRecord {
  Name: string;
  Cluster: string;
  IPAddresses: NodeAddress[];
  IPv4AllocCIDR: { IP: string; Mask: string } | null;
  IPv6AllocCIDR: { IP: string; Mask: string } | null;
  ClusterID: number;
}

export interface NamedPort {
  Name: string;
  Port: number;
  Protocol: L4Protocol;
}

/** `cilium/state/ip/v1/default/<ip>` */
export interface IPCacheEntry {
  IP: string;
  Mask: string | null;
  HostIP: string;
  ID: number;
  K8sNamespace: string;
  K8sPodName: string;
  /** Cilium writes a list (Go `[]NamedPort`), not a map; null when the pod names no port. */
  NamedPorts: NamedPort[] | null;
}
