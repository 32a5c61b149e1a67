/**
 * The one lab an e2e suite shares: brought up the way `clustermesh lab up` does (the CLI's
 * install and connect hooks) in direct or cached mode, with the suite's short peer-cache TTL
 * (chart values), and a global Service `e2e/echo` (affinity local) backed by a Deployment of two
 * echo pods in each cluster. Scenarios change
 * this baseline and put it back with `restoreBaseline`, so each one starts from the same state.
 */
import { join } from 'node:path';
import { type RunningLab, LAB_NAMESPACE, labDown, labUp } from '../../lab/cluster/index.js';
import { type Backend, type EchoSpec, createService, deployEcho } from '../../lab/workloads/deployment.js';
import { nthAddress, parseCidr } from '../../lib/net/cidr.js';
import { labHooks } from '../../cli/lab-up.js';
import { packageRoot } from '../../cli/install.js';
import { openCluster } from '../../cli/kube.js';
import { annotateService, annotationPatch, type GlobalOptions } from '../../cli/service.js';
import { type MeshMode, waitForStatus } from '../../cli/status.js';
import { agentStatus, backendsByCluster, findFrontend } from './agents.js';
import { waitFor } from './wait.js';

/** Not `cmlab` (the default a user may be running): the suite's own namespaces, cgroups and pins. */
export const E2E_PREFIX = 'cme2e';
/** The cached-mode suite's lab (both suites hold the lab lock, so they never run at once). */
export const E2E_CACHED_PREFIX = 'cme2ec';
export type { MeshMode };
export const LOCAL = 'east';
export const REMOTE = 'west';
/** the client pod's node; its agent is the one whose maps decide where requests go */
export const CLIENT_NODE = `${LOCAL}-worker`;
export const SERVICE_PORT = 80;
export const ECHO: EchoSpec = { namespace: 'e2e', name: 'echo', replicas: 2, targetPort: 8080 };
/**
 * Two bounds, each with ~8 s to spare. Longer than scenario 4's link-down time (its 12 s outage,
 * then the pod's restart and the reconnect: ~4-5 s), so an etcd outage keeps the peer's backends.
 * Short enough that scenario 7 (silent link: keepalive detection ≤ 8 s, then the TTL, then in
 * cached mode the cache → agent hop) puts west's links back before west's own control plane marks
 * west's nodes NotReady (their last lease renewal, lab/kubelet/node.ts, plus kube-controller-manager's
 * node-monitor grace period, 50 s: 40-50 s after the cables are pulled): past that its pods leave
 * west's EndpointSlices and the restore waits for the kubelets to report them again (a TTL of 35 s
 * left ~0-3 s and one cached run lost a west backend that way; with 30 s a kvstoremesh drop delayed
 * by ~20 s failed scenario 7 and, through west's NotReady nodes, 8 and 10 after it).
 */
export const SUITE_PEER_CACHE_TTL_MS = 25_000;
const READY_TIMEOUT_MS = 60_000;
export const CONVERGE_TIMEOUT_MS = 20_000;

export interface E2eEnv {
  running: RunningLab;
  distDir: string;
  prefix: string;
  mode: MeshMode;
  /** the echo Service's ClusterIP in each cluster */
  vips: Record<string, string>;
  /** the echo pods currently deployed, per cluster */
  backends: Record<string, Backend[]>;
  peerCacheTtlMs: number;
}

export function clusterNames(env: E2eEnv): string[] {
  return env.running.plan.clusters.map((c) => c.name);
}

export function workerNodes(env: E2eEnv, cluster: string): string[] {
  return env.running.plan.nodes.filter((n) => n.cluster === cluster && n.role === 'worker').map((n) => n.name);
}

export function serviceVip(running: RunningLab, cluster: string, n: number): string {
  const plan = running.plan.clusters.find((c) => c.name === cluster)!;
  return nthAddress(parseCidr(plan.serviceCIDRv4), n);
}

export async function setUpSuite(options: { prefix?: string; mode?: MeshMode; progress?: (line: string) => void } = {}): Promise<E2eEnv> {
  const prefix = options.prefix ?? E2E_PREFIX;
  const mode = options.mode ?? 'direct';
  const progress = options.progress ?? (() => undefined);
  const distDir = join(packageRoot(), 'dist');
  // The TTL of a silent peer's records is the suite's own, set where the peer's etcd is read: by
  // east's agents in direct mode, by east's kvstoremesh in cached mode (the agents then read the
  // local etcd, which stays up, and let the peer go when the kvstoremesh drops its cache).
  const ttl = `${SUITE_PEER_CACHE_TTL_MS / 1000}s`;
  const values =
    mode === 'direct'
      ? {
          [LOCAL]: { apiserver: { kvstoremesh: { enabled: false } }, agent: { extraArgs: [`--peer-cache-ttl=${ttl}`] } },
          [REMOTE]: { apiserver: { kvstoremesh: { enabled: false } } },
        }
      : {
          [LOCAL]: { apiserver: { kvstoremesh: { enabled: true, peerCacheTTL: ttl } } },
          [REMOTE]: { apiserver: { kvstoremesh: { enabled: true } } },
        };
  const running = await labUp({ prefix, distDir, progress, values }, labHooks);
  const env: E2eEnv = { running, distDir, prefix, mode, vips: {}, backends: {}, peerCacheTtlMs: SUITE_PEER_CACHE_TTL_MS };
  try {
    await waitConnected(env);
    for (const cluster of clusterNames(env)) {
      env.vips[cluster] = serviceVip(running, cluster, 20);
      await createService(running, cluster, { namespace: ECHO.namespace, name: ECHO.name, clusterIP: env.vips[cluster], port: SERVICE_PORT, targetPort: ECHO.targetPort });
      await setServicePolicy(env, cluster, { affinity: 'local' });
      env.backends[cluster] = await deployEcho(running, cluster, ECHO);
    }
    await waitBaseline(env);
    progress('baseline: echo global in both clusters, affinity local, 2 pods each');
    return env;
  } catch (err) {
    await labDown(prefix).catch(() => undefined);
    throw err;
  }
}

export async function tearDownSuite(prefix = E2E_PREFIX): Promise<void> {
  await labDown(prefix);
}

/** Every agent of every cluster connected to and synced with the other cluster. */
export async function waitConnected(env: E2eEnv): Promise<void> {
  for (const cluster of clusterNames(env)) {
    const report = await waitForStatus(openCluster(env.running.kubeconfig, cluster), LAB_NAMESPACE, READY_TIMEOUT_MS);
    if (!report.ready) throw new Error(`${cluster} did not become ready: ${JSON.stringify(report.errors)}`);
  }
}

/** Sets the echo Service's global annotations in one cluster (what `clustermesh service global` does). */
export async function setServicePolicy(env: E2eEnv, cluster: string, policy: GlobalOptions): Promise<void> {
  await annotateService(openCluster(env.running.kubeconfig, cluster), ECHO, annotationPatch('global', policy));
}

/** Backends of the echo frontend on a node's agent, by cluster (optionally only in one state). */
export async function echoBackends(env: E2eEnv, node: string, state?: string, vip = env.vips[LOCAL], proto = 'TCP'): Promise<Record<string, number>> {
  return backendsByCluster(findFrontend(await agentStatus(env.running, node), vip, SERVICE_PORT, proto), state);
}

/**
 * The baseline as every east agent programs it: both east pods active, west's two pods in the maps
 * (not in use under affinity local).
 */
export async function waitBaseline(env: E2eEnv): Promise<void> {
  for (const node of workerNodes(env, LOCAL))
    await waitFor(
      `${node}'s agent to program the baseline (2 active ${LOCAL} backends, 2 ${REMOTE} backends)`,
      async () => [await echoBackends(env, node, 'active'), await echoBackends(env, node)] as const,
      ([active, all]) => active[LOCAL] === ECHO.replicas && !active[REMOTE] && all[REMOTE] === ECHO.replicas,
      CONVERGE_TIMEOUT_MS,
    );
}

/**
 * Puts back what a scenario changed: east's echo pods when a scenario removed them, east's policy
 * (affinity local) when it changed it, and waits until the agents program the baseline again.
 */
export async function restoreBaseline(env: E2eEnv, changes: { policy?: boolean } = {}): Promise<void> {
  if (changes.policy) await setServicePolicy(env, LOCAL, { affinity: 'local' });
  if (env.backends[LOCAL].length === 0) env.backends[LOCAL] = await deployEcho(env.running, LOCAL, ECHO);
  await waitBaseline(env);
}
