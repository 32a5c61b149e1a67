/**
 * Bringing the lab up with the product's own install bootstrap and connect code as hooks; shared
 * by `clustermesh lab up` and the demo.
 */
import { join } from 'node:path';
import { LAB_NAMESPACE, type LabHooks, type RunningLab, labUp } from '../lab/cluster/index.js';
import { connectClusters } from './connect.js';
import { bootstrapCluster, packageRoot, parseClusterIdentity } from './install.js';
import { openCluster } from './kube.js';
import { formatStatus, waitForStatus } from './status.js';

export const labHooks: LabHooks = {
  async bootstrap({ kubeconfig, context, name, id, nodePort, extraConfig }) {
    return bootstrapCluster(openCluster(kubeconfig, context), {
      namespace: LAB_NAMESPACE,
      identity: parseClusterIdentity(name, String(id)),
      nodePort,
      extraConfig,
    });
  },
  async connect(kubeconfig, a, b) {
    await connectClusters(openCluster(kubeconfig, a), openCluster(kubeconfig, b), LAB_NAMESPACE);
  },
};

export function distDir(): string {
  return join(packageRoot(), 'dist');
}

const progress = (line: string) => process.stderr.write(`  ${line}\n`);

/** Brings the lab up and waits until every agent of every cluster is connected to the others. */
export async function upAndWait(prefix: string, options: { connect?: boolean; waitMs: number }): Promise<{ running: RunningLab; ready: boolean }> {
  process.stderr.write(`lab ${prefix}: starting\n`);
  const running = await labUp({ prefix, distDir: distDir(), progress, connect: options.connect }, labHooks);
  let ready = true;
  for (const cluster of running.plan.clusters) {
    const report = await waitForStatus(openCluster(running.kubeconfig, cluster.name), LAB_NAMESPACE, options.waitMs);
    process.stderr.write(`${formatStatus(report)}\n`);
    ready &&= report.ready;
  }
  return { running, ready };
}

