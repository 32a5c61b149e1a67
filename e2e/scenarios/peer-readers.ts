/**
 * Who reads the peer's etcd, by mode: in direct mode every east agent holds a link to west's etcd;
 * in cached mode only east's kvstoremesh does (the sidecar of east's clustermesh-apiserver pod,
 * clustermesh-apiserver/kvstoremesh/), and the agents read its cache in the local etcd. Scenarios
 * that act on that link (an outage, a restart, a hostile record) observe the reader of the mode.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { RunningLab } from '../../lab/cluster/index.js';
import { podNetns } from '../../lab/workloads/sandbox.js';
import { agentStatus, metricByLabel } from './agents.js';
import { apiserverPod } from './daemons.js';
import { type E2eEnv, LOCAL, REMOTE, workerNodes } from './suite.js';

/** the chart's apiserver.kvstoremesh.healthPort (deploy/helm/clustermesh/values.yaml) */
const KVSTOREMESH_HEALTH_PORT = 9881;
export const MESH_REJECTED_METRIC = 'clustermesh_kvstoremesh_rejected_records_total';
const run = promisify(execFile);

/**
 * The kvstoremesh's Prometheus text, read from inside its pod's network namespace: the lab
 * blackholes pod ranges on the host (lab/topology/plan.ts hostBlackholes).
 */
export async function kvstoremeshMetricsText(running: RunningLab, cluster: string): Promise<string> {
  const pod = await apiserverPod(running, cluster);
  const netns = podNetns(running, pod.node, pod.name);
  const url = `http://127.0.0.1:${KVSTOREMESH_HEALTH_PORT}/metrics`;
  const { stdout } = await run('nsenter', [`--net=/run/netns/${netns}`, 'curl', '-sSf', '--max-time', '2', url]);
  return stdout;
}

/** One process holding a link to west's etcd. */
export interface PeerReader {
  /** e.g. "east-worker's agent" */
  name: string;
  /** the link to west's etcd is up and what it read is synced */
  linked(): Promise<boolean>;
}

/** Who reads west's etcd on the east side, in words. */
export const peerReadersName = (env: E2eEnv): string => (env.mode === 'cached' ? `${LOCAL}'s kvstoremesh` : `every ${LOCAL} agent`);

/** The readers of west's etcd on the east side, in the suite's mode. */
export function peerReaders(env: E2eEnv): PeerReader[] {
  if (env.mode === 'cached')
    return [
      {
        name: `${LOCAL}'s kvstoremesh`,
        async linked() {
          const text = await kvstoremeshMetricsText(env.running, LOCAL);
          const up = (metric: string) => metricByLabel(text, metric, 'cluster')[REMOTE] === 1;
          return up('clustermesh_kvstoremesh_peer_connected') && up('clustermesh_kvstoremesh_peer_synced');
        },
      },
    ];
  return workerNodes(env, LOCAL).map((node) => ({
    name: `${node}'s agent`,
    linked: async () => (await agentStatus(env.running, node)).remotes.find((r) => r.name === REMOTE)?.ready === true,
  }));
}

/** Refusals east's kvstoremesh counted for west's records, by reason (none in direct mode). */
export async function meshRejections(env: E2eEnv): Promise<Record<string, number>> {
  if (env.mode !== 'cached') return {};
  return metricByLabel(await kvstoremeshMetricsText(env.running, LOCAL), MESH_REJECTED_METRIC, 'reason', { cluster: REMOTE });
}
