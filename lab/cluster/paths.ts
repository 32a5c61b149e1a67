/** Where a running lab keeps its files: everything under /run/clustermesh-lab/<prefix>/. */
import { join } from 'node:path';
import { STATE_DIR } from '../topology/host.js';

export const BPFFS = '/sys/fs/bpf';

export function labPaths(prefix: string) {
  const root = join(STATE_DIR, prefix);
  return {
    root,
    logs: join(root, 'logs'),
    pids: join(root, 'pids'),
    /** a kubeconfig with every cluster's context (what a user passes to kubectl) */
    kubeconfig: join(root, 'kubeconfig'),
    clusterKubeconfig: (cluster: string) => join(root, `${cluster}.kubeconfig`),
    pki: (cluster: string) => join(root, 'pki', cluster),
    etcdData: (cluster: string) => join(root, 'etcd', cluster),
    /** the agents' --clustermesh-config: the remotes Secret projected by the lab kubelet */
    remotes: (cluster: string) => join(root, 'remotes', cluster),
    bpfRoot: join(BPFFS, `clustermesh-lab-${prefix}`),
    bpfPinDir: (node: string) => join(BPFFS, `clustermesh-lab-${prefix}`, node),
  };
}

/** Ports inside each node's namespace (each node has its own addresses, so they never clash). */
export const LAB_PORTS = {
  kubeApi: 6443,
  etcd: 2379,
  apiserverHealth: 9880,
  agentStatus: 9878,
  agentHealth: 9879,
} as const;
