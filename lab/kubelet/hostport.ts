/**
 * hostPort on a pod with its own network namespace: DNAT from the node's address to the pod, in
 * the node's namespace only, as the CNI portmap plugin does (the lab has no kube-proxy, so this is
 * also how other clusters reach a pod's port through a node, e.g. the clustermesh-apiserver's etcd).
 * Pure: the iptables/ip6tables argument lists; each rule carries a comment naming the pod, so
 * leftovers of a crashed kubelet can be found and removed.
 */
import type { V1Pod } from '@kubernetes/client-node';

export const RULE_COMMENT_PREFIX = 'lab-kubelet:';

export interface NatRule {
  family: 4 | 6;
  /** arguments after `-t nat -A|-D` */
  args: string[];
}

export function ruleComment(podUid: string): string {
  return `${RULE_COMMENT_PREFIX}${podUid}`;
}

export function hostPortRules(pod: V1Pod, node: { ipv4: string; ipv6: string }, podIPs: { ipv4: string; ipv6: string }): NatRule[] {
  if (pod.spec?.hostNetwork) return [];
  const comment = ['-m', 'comment', '--comment', ruleComment(pod.metadata?.uid ?? '')];
  const rules: NatRule[] = [];
  for (const container of pod.spec?.containers ?? []) {
    for (const port of container.ports ?? []) {
      if (!port.hostPort) continue;
      const protocol = (port.protocol ?? 'TCP').toLowerCase();
      for (const [family, nodeIP, to] of [
        [4, node.ipv4, `${podIPs.ipv4}:${port.containerPort}`],
        [6, node.ipv6, `[${podIPs.ipv6}]:${port.containerPort}`],
      ] as const) {
        const match = ['-d', nodeIP, '-p', protocol, '--dport', String(port.hostPort)];
        // PREROUTING: from other nodes, clusters and pods; OUTPUT: from the node's own processes
        for (const chain of ['PREROUTING', 'OUTPUT']) {
          rules.push({ family, args: [chain, ...match, ...comment, '-j', 'DNAT', '--to-destination', to] });
        }
      }
    }
  }
  return rules;
}
