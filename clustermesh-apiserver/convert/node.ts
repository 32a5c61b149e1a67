import type { V1Node } from '@kubernetes/client-node';
import type { NodeAddress, NodeRecord } from '../../lib/kvstore/types.js';
import type { ClusterRef } from './cluster.js';
import { canonicalWireIp, parseCIDR, type IPNetJSON, type ParsedCIDR } from './ip.js';
import { reject, type Rejection } from './rejection.js';

export interface NodeConversion {
  /** `null` when the node has no usable address (see `rejections`) */
  node: NodeRecord | null;
  rejections: Rejection[];
}

const EXPORTED_ADDRESS_TYPES = new Set<string>(['InternalIP', 'ExternalIP']);

function nodeAddresses(node: V1Node, rejections: Rejection[]): NodeAddress[] {
  const addresses: NodeAddress[] = [];
  for (const address of node.status?.addresses ?? []) {
    if (!EXPORTED_ADDRESS_TYPES.has(address.type)) continue;
    const ip = canonicalWireIp(address.address);
    if (ip === null) {
      rejections.push(
        reject(
          'Node',
          node,
          `status.addresses: ${address.type} ${JSON.stringify(address.address)} is not an IP address; skipped`,
        ),
      );
    } else {
      addresses.push({ Type: address.type as NodeAddress['Type'], IP: ip });
    }
  }
  return addresses;
}

/** `spec.podCIDRs` (or the older single `spec.podCIDR`), split by family; the first of each family wins. */
function podCIDRsByFamily(node: V1Node, rejections: Rejection[]): Map<4 | 6, IPNetJSON> {
  const texts = node.spec?.podCIDRs?.length
    ? node.spec.podCIDRs
    : node.spec?.podCIDR
      ? [node.spec.podCIDR]
      : [];
  const byFamily = new Map<4 | 6, IPNetJSON>();
  for (const text of texts) {
    const cidr: ParsedCIDR | null = parseCIDR(text);
    if (cidr === null) {
      rejections.push(reject('Node', node, `spec.podCIDRs: ${JSON.stringify(text)} is not a CIDR; skipped`));
    } else if (!byFamily.has(cidr.family)) {
      byFamily.set(cidr.family, cidr.json);
    }
  }
  return byFamily;
}

/**
 * The kvstore node record (`cilium/state/nodes/v1/<cluster>/<node>`): InternalIP and ExternalIP
 * addresses in status order, pod CIDRs in Cilium's `cidr.CIDR` JSON. A node without any valid
 * address is rejected, since peers could neither route to it nor tell it apart.
 */
export function nodeToNodeRecord(cluster: ClusterRef, node: V1Node): NodeConversion {
  const rejections: Rejection[] = [];
  const addresses = nodeAddresses(node, rejections);
  if (addresses.length === 0) {
    rejections.push(
      reject(
        'Node',
        node,
        'has no valid InternalIP or ExternalIP in status.addresses; not exported until it has one',
      ),
    );
    return { node: null, rejections };
  }
  const cidrs = podCIDRsByFamily(node, rejections);
  return {
    node: {
      Name: node.metadata?.name ?? '',
      Cluster: cluster.name,
      IPAddresses: addresses,
      IPv4AllocCIDR: cidrs.get(4) ?? null,
      IPv6AllocCIDR: cidrs.get(6) ?? null,
      ClusterID: cluster.id,
    },
    rejections,
  };
}
