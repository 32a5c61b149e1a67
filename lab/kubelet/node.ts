/**
 * The lab kubelet's Node: registered at start (labels, podCIDRs from the lab's address plan),
 * its status (addresses, Ready, capacity, versions) written then and every minute, and its Lease
 * in kube-node-lease renewed every 10 s (what the node lifecycle controller watches).
 */
import { cpus, release, totalmem } from 'node:os';
import { existsSync, readFileSync, statfsSync } from 'node:fs';
import { type KubeRest, isStatus } from './rest.js';

export const LEASE_RENEW_MS = 10_000;
export const LEASE_DURATION_SECONDS = 40;
export const NODE_STATUS_MS = 60_000;
const MAX_PODS = 110;

export interface NodeIdentity {
  name: string;
  ipv4: string;
  ipv6: string;
  podCIDRv4: string;
  podCIDRv6: string;
  kubeletVersion: string;
  /** a directory on the filesystem pods write to (for ephemeral-storage) */
  stateDir: string;
  labels?: Record<string, string>;
  taints?: Array<{ key: string; value?: string; effect: string }>;
}

/** Go's GOARCH names, which the kubernetes.io/arch label uses. */
export function goArch(nodeArch: string): string {
  return ({ x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' } as Record<string, string>)[nodeArch] ?? nodeArch;
}

function osImage(): string {
  if (!existsSync('/etc/os-release')) return 'Linux';
  const pretty = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'));
  return pretty?.[1] ?? 'Linux';
}

/** The Node object a kubelet registers. Pure apart from the host facts passed in. */
export function nodeObject(id: NodeIdentity): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: id.name,
      labels: {
        'kubernetes.io/hostname': id.name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': goArch(process.arch),
        ...id.labels,
      },
    },
    spec: { podCIDR: id.podCIDRv4, podCIDRs: [id.podCIDRv4, id.podCIDRv6], ...(id.taints?.length ? { taints: id.taints } : {}) },
  };
}

export function nodeStatus(id: NodeIdentity, now: string, since: string): unknown {
  const disk = statfsSync(id.stateDir);
  const resources = {
    cpu: String(cpus().length),
    memory: `${Math.floor(totalmem() / 1024)}Ki`,
    pods: String(MAX_PODS),
    'ephemeral-storage': `${Math.floor((disk.blocks * disk.bsize) / 1024)}Ki`,
  };
  const condition = (type: string, status: string, reason: string, message: string) => ({
    type,
    status,
    reason,
    message,
    lastHeartbeatTime: now,
    lastTransitionTime: since,
  });
  return {
    status: {
      capacity: resources,
      allocatable: resources,
      conditions: [
        condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
        condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
        condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
        condition('Ready', 'True', 'KubeletReady', 'lab kubelet is posting ready status'),
      ],
      addresses: [
        { type: 'InternalIP', address: id.ipv4 },
        { type: 'InternalIP', address: id.ipv6 },
        { type: 'Hostname', address: id.name },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 0 } },
      nodeInfo: {
        machineID: '',
        systemUUID: '',
        bootID: '',
        kernelVersion: release(),
        osImage: osImage(),
        containerRuntimeVersion: 'lab://processes',
        kubeletVersion: id.kubeletVersion,
        kubeProxyVersion: '',
        operatingSystem: 'linux',
        architecture: goArch(process.arch),
      },
    },
  };
}

/** RFC 3339 with microseconds, as a Lease's renewTime (MicroTime) must be written. */
function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class NodeRegistration {
  private readonly since = new Date().toISOString();
  private timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly rest: KubeRest,
    private readonly id: NodeIdentity,
    private readonly onError: (what: string, err: unknown) => void,
  ) {}

  /** Creates the Node (or keeps the one there), writes its status, takes its Lease. */
  async register(): Promise<void> {
    try {
      await this.rest.call('POST', '/api/v1/nodes', nodeObject(this.id));
    } catch (err) {
      if (!isStatus(err, 409)) throw err;
    }
    await this.writeStatus();
    await this.renewLease();
    this.timers = [
      setInterval(() => void this.renewLease().catch((err) => this.onError('lease', err)), LEASE_RENEW_MS),
      setInterval(() => void this.writeStatus().catch((err) => this.onError('node status', err)), NODE_STATUS_MS),
    ];
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
  }

  private async writeStatus(): Promise<void> {
    const path = `/api/v1/nodes/${this.id.name}/status`;
    await this.rest.call('PATCH', path, nodeStatus(this.id, new Date().toISOString(), this.since), 'application/merge-patch+json');
  }

  private async renewLease(): Promise<void> {
    const base = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases`;
    const spec = {
      holderIdentity: this.id.name,
      leaseDurationSeconds: LEASE_DURATION_SECONDS,
      renewTime: microTime(new Date()),
    };
    try {
      await this.rest.call('PATCH', `${base}/${this.id.name}`, { spec }, 'application/merge-patch+json');
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
      await this.rest.call('POST', base, {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.id.name, namespace: 'kube-node-lease' },
        spec,
      });
    }
  }
}
