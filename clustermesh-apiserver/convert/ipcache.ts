import type { V1Pod } from '@kubernetes/client-node';
import { namespaceExport } from '../../lib/k8s/annotations.js';
import type { IPCacheEntry, NamedPort } from '../../lib/kvstore/types.js';
import { canonicalWireIp } from './ip.js';
import { podNeedsIdentity } from './labels.js';
import { reject, type Rejection } from './rejection.js';
import { toL4Protocol } from './ports.js';

export interface IPCacheConversion {
  /** one per pod IP, in `status.podIPs` order; empty for pods that get none (see `podNeedsIdentity`) */
  entries: IPCacheEntry[];
  /** why a pod of a namespace that is not global yields nothing (it is not wrong: no rejection) */
  withheld?: string;
  rejections: Rejection[];
}

/** What besides the pod decides whether it is exported (as for Services: convert/service.ts). */
export interface PodExportContext {
  /** annotations of the pod's Namespace; undefined when unannotated or not (yet) known */
  namespaceAnnotations: Readonly<Record<string, string>> | undefined;
  /** the `--global-namespaces-default` flag: do unannotated namespaces count as global */
  globalNamespacesByDefault: boolean;
}

function podIPs(pod: V1Pod): string[] {
  const listed = pod.status?.podIPs?.map((p) => p.ip) ?? [];
  const ips = listed.length > 0 ? listed : pod.status?.podIP ? [pod.status.podIP] : [];
  return [...new Set(ips)];
}

/** Named container ports (what policies can refer to by name); `null` when there are none, as Cilium omits them. */
function namedPorts(pod: V1Pod): NamedPort[] | null {
  const ports = new Map<string, NamedPort>();
  for (const container of pod.spec?.containers ?? []) {
    for (const port of container.ports ?? []) {
      const protocol = toL4Protocol(port.protocol);
      if (port.name && protocol && !ports.has(port.name))
        ports.set(port.name, { Name: port.name, Port: port.containerPort, Protocol: protocol });
    }
  }
  if (ports.size === 0) return null;
  return [...ports.values()].sort((a, b) => (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0));
}

/**
 * The ipcache entries (`cilium/state/ip/v1/default/<ip>`) of a pod: each pod IP → its identity and
 * the IP of its node. `Mask` is null as Cilium writes it for single addresses. Pods of a namespace
 * that is not global are withheld, as Cilium's clustermesh-apiserver does: peers learn neither
 * their IPs nor their identities. Host-network and finished pods yield nothing (their IPs belong
 * to the node, or may already be reused); a pod without IP yet or without a node IP is rejected.
 *
 * `hostIP` is the node IP the daemon chose for the pod's node; when omitted, `status.hostIP`.
 */
export function podToIPCacheEntries(
  pod: V1Pod,
  identity: number,
  context: PodExportContext,
  hostIP?: string,
): IPCacheConversion {
  const namespace = namespaceExport(context.namespaceAnnotations, context.globalNamespacesByDefault);
  if (!namespace.export) return { entries: [], withheld: namespace.reason, rejections: [] };
  if (!podNeedsIdentity(pod)) return { entries: [], rejections: [] };
  const ips = podIPs(pod);
  if (ips.length === 0)
    return {
      entries: [],
      rejections: [reject('Pod', pod, 'has no IP yet (status.podIPs is empty); skipped until it has one')],
    };
  const rawHostIP = hostIP ?? pod.status?.hostIP;
  const HostIP = rawHostIP === undefined ? null : canonicalWireIp(rawHostIP);
  if (HostIP === null) {
    return {
      entries: [],
      rejections: [
        reject(
          'Pod',
          pod,
          `has no valid node IP (got ${JSON.stringify(rawHostIP ?? null)}); skipped until it has one`,
        ),
      ],
    };
  }
  const rejections: Rejection[] = [];
  const entries: IPCacheEntry[] = [];
  const NamedPorts = namedPorts(pod);
  for (const ip of ips) {
    const IP = canonicalWireIp(ip);
    if (IP === null) {
      rejections.push(
        reject('Pod', pod, `status.podIPs: ${JSON.stringify(ip)} is not an IP address; skipped`),
      );
      continue;
    }
    entries.push({
      IP,
      Mask: null,
      HostIP,
      ID: identity,
      K8sNamespace: pod.metadata?.namespace ?? '',
      K8sPodName: pod.metadata?.name ?? '',
      NamedPorts,
    });
  }
  return { entries, rejections };
}
