/**
 * Bringing the lab up with the product's own install and connect code as hooks; shared
 * by `clustermesh lab up` and the demo.
 */
import { join } from 'node:path';
import { LAB_NAMESPACE, type LabHooks, type RunningLab, labUp } from '../lab/cluster/index.js';
import { connectClusters } from './connect.js';
import { installCluster, packageRoot, parseClusterIdentity, parseNodePort } from './install.js';
import { openCluster } from './kube.js';
import { formatStatus, waitForStatus } from './status.js';

const INSTALL_TIMEOUT_MS = 120_000;

export const labHooks: LabHooks = {
  // what `clustermesh install --context <c> --cluster-name … --cluster-id … -f <valuesFile> --wait` does
  async install({ kubeconfig, context, name, id, valuesFile }) {
    const cluster = openCluster(kubeconfig, context);
    const identity = parseClusterIdentity(name, String(id));
    const nodePort = parseNodePort(undefined, identity.id);
    const values = { namespace: LAB_NAMESPACE, identity, nodePort, valuesFiles: [valuesFile] };
    await installCluster(cluster, values, { progress: () => undefined, waitMs: INSTALL_TIMEOUT_MS });
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

