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
    /** a kubeconfig with every cluster's admin context (what a user passes to kubectl) */
    kubeconfig: join(root, 'kubeconfig'),
    /** certificates, kubeconfigs and the Kubernetes etcd of one cluster's control plane */
    controlPlane: (cluster: string) => join(root, 'control-plane', cluster),
    /** one lab kubelet's pods: volumes, container logs, sandbox records */
    kubelet: (node: string) => join(root, 'kubelet', node),
    /** the chart values `clustermesh install` gets for one lab cluster */
    chartValues: (cluster: string) => join(root, `${cluster}-values.yaml`),
    /** bpffs directory holding every node's pins (the agents pin under <bpfRoot>/<node>) */
    bpfRoot: join(BPFFS, `clustermesh-lab-${prefix}`),
  };
}

/** Ports inside each node's namespace (each node has its own addresses, so they never clash). */
export const LAB_PORTS = {
  kubeApi: 6443,
  /** the Kubernetes etcd, on the control-plane node's loopback */
  kubeEtcd: 2479,
  kubeEtcdPeer: 2480,
  /** the clustermesh-apiserver's etcd, published on its node's IP (the chart's etcd hostPort) */
  etcd: 2379,
  /** the chart's defaults (deploy/helm/clustermesh/values.yaml) */
  agentStatus: 9878,
  agentHealth: 9879,
} as const;
