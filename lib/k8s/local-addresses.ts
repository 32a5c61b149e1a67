/**
 * What the local cluster holds, read from its Nodes and Services plus the configured cluster-wide
 * ranges: the addresses no peer may publish (lib/kvstore/ownership.ts). Both readers of peers
 * need it, the agent (agent/local/informers.ts) and the kvstoremesh
 * (clustermesh-apiserver/kvstoremesh/local-cluster.ts); the functions are pure, the tracker holds
 * one answer while its content stays the same.
 */
import type { V1Node, V1Service } from '@kubernetes/client-node';
import type { LocalAddresses } from '../kvstore/ownership.js';
import { isIpAddress } from '../net/ip.js';

/** A Service's ClusterIPs as its spec states them ("None" for a headless one included). */
export function serviceClusterIPs(svc: V1Service): string[] {
  const ips = svc.spec?.clusterIPs ?? (svc.spec?.clusterIP ? [svc.spec.clusterIP] : []);
  return [...ips];
}

/** The pod CIDRs of the local Nodes (spec.podCIDRs, or the older single spec.podCIDR). */
export function localPodCidrs(nodes: readonly V1Node[]): string[] {
  const cidrs = new Set<string>();
  for (const node of nodes) {
    for (const cidr of node.spec?.podCIDRs ?? (node.spec?.podCIDR ? [node.spec.podCIDR] : []))
      cidrs.add(cidr);
  }
  return [...cidrs].sort();
}

/** The cluster-wide ranges a daemon is told of (--pod-cidrs, --service-cidrs). */
export interface ConfiguredCidrs {
  podCidrs: readonly string[];
  serviceCidrs: readonly string[];
}

export const NO_CONFIGURED_CIDRS: ConfiguredCidrs = Object.freeze({ podCidrs: [], serviceCidrs: [] });

const sortedUnique = (items: Iterable<string>): string[] => [...new Set(items)].sort();

/**
 * The Nodes' pod CIDRs and addresses, every Service's ClusterIPs (headless "None" is no address),
 * and the configured cluster-wide ranges, which also cover what no Node or Service uses yet.
 */
export function localAddresses(
  nodes: readonly V1Node[],
  services: readonly V1Service[],
  configured: ConfiguredCidrs,
): LocalAddresses {
  return {
    podCidrs: sortedUnique([...localPodCidrs(nodes), ...configured.podCidrs]),
    serviceCidrs: sortedUnique(configured.serviceCidrs),
    clusterIPs: sortedUnique(services.flatMap(serviceClusterIPs).filter(isIpAddress)),
    nodeIPs: sortedUnique(
      nodes.flatMap((node) => (node.status?.addresses ?? []).map((a) => a.address)).filter(isIpAddress),
    ),
  };
}

export function sameLocalAddresses(a: LocalAddresses, b: LocalAddresses): boolean {
  const same = (x: readonly string[], y: readonly string[]) =>
    x.length === y.length && x.every((v, i) => v === y[i]);
  return (
    same(a.podCidrs, b.podCidrs) &&
    same(a.serviceCidrs, b.serviceCidrs) &&
    same(a.clusterIPs, b.clusterIPs) &&
    same(a.nodeIPs, b.nodeIPs)
  );
}

/** What the tracker reads: the Node and Service informers' caches. */
export interface LocalObjectsReader {
  /** every informer the answer rests on has listed once */
  synced(): boolean;
  nodes(): readonly V1Node[];
  services(): readonly V1Service[];
}

/**
 * `current()` is null until the informers synced, then the same object as long as its content is
 * the same: the ownership gate (lib/kvstore/ownership-gate.ts) decides again only for a new one.
 */
export class LocalAddressTracker {
  private addresses: LocalAddresses | null = null;
  private stale = true;

  constructor(
    private readonly reader: LocalObjectsReader,
    private readonly configured: ConfiguredCidrs,
  ) {}

  /** A Node or Service changed: the next current() reads them again. */
  changed(): void {
    this.stale = true;
  }

  current(): LocalAddresses | null {
    if (!this.reader.synced()) return null;
    if (this.stale) {
      const fresh = localAddresses(this.reader.nodes(), this.reader.services(), this.configured);
      if (!this.addresses || !sameLocalAddresses(this.addresses, fresh)) this.addresses = fresh;
      this.stale = false;
    }
    return this.addresses;
  }
}
