/**
 * The lab's workloads as real objects: the echo backends are a Deployment behind a Service (the
 * lab kubelets run its pods; the real EndpointSlice controller publishes them), removed gracefully
 * by scaling to 0 (terminating endpoints, each pod draining before it stops) or abruptly (its node's
 * kubelet frozen, the pods' processes killed: the API still says ready, as when a node hangs).
 * And a client pod whose requests are reported one by one.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { AppsV1Api, CoreV1Api, type V1Deployment, type V1Pod } from '@kubernetes/client-node';
import type { KubernetesObject } from '@kubernetes/client-node';
import { UserError } from '../../lib/errors.js';
import { labApi, labKubeConfig } from '../cluster/api.js';
import { type RunningLab, kubeletPid } from '../cluster/index.js';
import { LAB_PORTS } from '../cluster/paths.js';
import { isStopped, waitReady } from '../cluster/processes.js';
import { ECHO_IMAGE } from '../kubelet/images.js';
import { type NodePlan, podAddresses } from '../topology/plan.js';
import type { RequestRecord } from './client.js';
import { killPodProcesses } from './sandbox.js';

const READY_TIMEOUT_MS = 60_000;
/** bounds each echo pod's drain (lab/workloads/echo-server.ts --drain-from) */
const TERMINATION_GRACE_SECONDS = 10;

export interface EchoSpec {
  namespace: string;
  name: string;
  replicas: number;
  /** the pods' port (TCP and UDP); the Service maps `port` to it */
  targetPort: number;
}

export interface Backend {
  cluster: string;
  node: string;
  pod: string;
  ipv4: string;
}

function workersOf(running: RunningLab, cluster: string): NodePlan[] {
  const nodes = running.plan.nodes.filter((n) => n.cluster === cluster && n.role === 'worker');
  if (nodes.length === 0) throw new UserError(`the lab has no cluster "${cluster}"`);
  return nodes;
}

/** API clients of one lab cluster (reads the kubeconfig file: once per call, never in a wait loop). */
function clients(running: RunningLab, cluster: string) {
  const kc = labKubeConfig(running.kubeconfig, cluster);
  return { core: kc.makeApiClient(CoreV1Api), apps: kc.makeApiClient(AppsV1Api) };
}

async function ensureNamespace(core: CoreV1Api, namespace: string): Promise<void> {
  try {
    await core.createNamespace({ body: { metadata: { name: namespace } } });
  } catch (err) {
    if ((err as { code?: number }).code !== 409) throw err;
  }
}

export interface ServiceSpec {
  namespace: string;
  name: string;
  clusterIP: string;
  port: number;
  targetPort: number;
  annotations?: Record<string, string>;
}

export async function createService(running: RunningLab, cluster: string, spec: ServiceSpec): Promise<void> {
  await ensureNamespace(clients(running, cluster).core, spec.namespace);
  await labApi(running.kubeconfig, cluster).put({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: spec.name, namespace: spec.namespace, annotations: spec.annotations ?? {} },
    spec: {
      type: 'ClusterIP',
      clusterIP: spec.clusterIP,
      clusterIPs: [spec.clusterIP],
      selector: { app: spec.name },
      ports: ['TCP', 'UDP'].map((protocol) => ({ name: protocol.toLowerCase(), protocol, port: spec.port, targetPort: spec.targetPort })),
    },
  } as KubernetesObject);
}

/**
 * The echo Deployment: one pod per worker first (spread by hostname), readiness by TCP, and a
 * graceful stop that keeps serving until no agent of the mesh offers the pod any more.
 */
export function echoDeployment(running: RunningLab, cluster: string, spec: EchoSpec): V1Deployment {
  const agents = running.plan.nodes.map((n) => `http://${n.ipv4}:${LAB_PORTS.agentStatus}`).join(',');
  const labels = { app: spec.name };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: spec.name, namespace: spec.namespace, labels },
    spec: {
      replicas: spec.replicas,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          terminationGracePeriodSeconds: TERMINATION_GRACE_SECONDS,
          topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: labels } }],
          containers: [
            {
              name: 'echo',
              image: ECHO_IMAGE,
              args: ['--identity', `$(CLUSTER)/$(POD_NAME)`, '--port', String(spec.targetPort), '--address', '$(POD_IP)', '--drain-from', agents],
              env: [
                { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
                { name: 'CLUSTER', value: cluster },
              ],
              ports: [
                { name: 'tcp', containerPort: spec.targetPort, protocol: 'TCP' },
                { name: 'udp', containerPort: spec.targetPort, protocol: 'UDP' },
              ],
              readinessProbe: { tcpSocket: { port: spec.targetPort }, periodSeconds: 1 },
            },
          ],
        },
      },
    },
  };
}

/** Creates (or scales back up) the echo Deployment of a cluster; resolves with its ready pods. */
export async function deployEcho(running: RunningLab, cluster: string, spec: EchoSpec): Promise<Backend[]> {
  const { core, apps } = clients(running, cluster);
  await ensureNamespace(core, spec.namespace);
  // The pods an abrupt removal killed would run again only after their kubelet's restart backoff,
  // which grows with every kill of the same pod (lab/kubelet/restart.ts: 32 s by the sixth run of a
  // repeated scenario). They are replaced instead, as the node lifecycle controller evicts the pods
  // of a node that was lost.
  const thawed = resumeKubelets(running, cluster);
  for (const pod of await echoPods(core, spec)) {
    if (thawed.has(pod.spec?.nodeName ?? '')) await core.deleteNamespacedPod({ name: pod.metadata!.name!, namespace: spec.namespace, gracePeriodSeconds: 0 });
  }
  const deployment = echoDeployment(running, cluster, spec);
  try {
    await apps.createNamespacedDeployment({ namespace: spec.namespace, body: deployment });
  } catch (err) {
    if ((err as { code?: number }).code !== 409) throw err;
    await apps.patchNamespacedDeploymentScale({ name: spec.name, namespace: spec.namespace, body: [{ op: 'replace', path: '/spec/replicas', value: spec.replicas }] });
  }
  let backends: Backend[] = [];
  await waitReady(undefined, `${spec.replicas} ready ${cluster} ${spec.name} pods`, async () => {
    backends = (await echoPods(core, spec)).filter(podReady).map((p) => backendOf(cluster, p));
    return backends.length === spec.replicas;
  }, READY_TIMEOUT_MS);
  return backends;
}

async function echoPods(core: CoreV1Api, spec: EchoSpec): Promise<V1Pod[]> {
  return (await core.listNamespacedPod({ namespace: spec.namespace, labelSelector: `app=${spec.name}` })).items;
}

function podReady(pod: V1Pod): boolean {
  return !pod.metadata?.deletionTimestamp && (pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false);
}

function backendOf(cluster: string, pod: V1Pod): Backend {
  return { cluster, node: pod.spec?.nodeName ?? '', pod: pod.metadata?.name ?? '', ipv4: pod.status?.podIP ?? '' };
}

/**
 * Removes backends. Graceful: the Deployment scales to 0; each pod is terminating (its endpoint
 * stops being ready at once) and drains before it stops. Abrupt: the kubelets of their nodes are
 * frozen and the pods' processes killed, so the API keeps listing them ready (a hung node); the
 * next `deployEcho` thaws the kubelets, which restart them.
 */
export async function removeBackends(running: RunningLab, spec: EchoSpec, backends: Backend[], graceful: boolean): Promise<void> {
  if (backends.length === 0) return;
  const cluster = backends[0].cluster;
  if (graceful) {
    const { core, apps } = clients(running, cluster);
    await apps.patchNamespacedDeploymentScale({ name: spec.name, namespace: spec.namespace, body: [{ op: 'replace', path: '/spec/replicas', value: 0 }] });
    await waitReady(undefined, `${cluster}'s ${spec.name} pods to be gone`, async () => (await echoPods(core, spec)).length === 0, READY_TIMEOUT_MS);
    return;
  }
  for (const node of new Set(backends.map((b) => b.node))) {
    const pid = kubeletPid(running, node);
    if (pid) process.kill(pid, 'SIGSTOP');
  }
  for (const b of backends) await killPodProcesses(running, b.node, b.pod);
}

/** Thaws the kubelets of the cluster that an abrupt removal froze; returns their nodes. */
function resumeKubelets(running: RunningLab, cluster: string): Set<string> {
  const thawed = new Set<string>();
  for (const node of workersOf(running, cluster)) {
    const pid = kubeletPid(running, node.name);
    if (pid === undefined || !isStopped(pid)) continue;
    process.kill(pid, 'SIGCONT');
    thawed.add(node.name);
  }
  return thawed;
}

export interface ClientRun {
  child: ChildProcess;
  /** resolves when the client has sent its last request and exited */
  done: Promise<void>;
}

/** A client pod on `node` (in the node's cgroup, so socket-LB applies) sending to `target`. */
export async function runClient(
  running: RunningLab,
  node: string,
  options: { target: string; rate: number; durationSeconds: number; udp?: boolean; distDir: string },
  onRecord: (record: RequestRecord) => void,
): Promise<ClientRun> {
  const nodePlan = running.plan.nodes.find((n) => n.name === node);
  if (!nodePlan) throw new UserError(`the lab has no node "${node}"`);
  const { ipv4, ipv6 } = podAddresses(nodePlan, 50);
  await running.lab.addPod(node, 'client', ipv4, ipv6);
  const args = [join(options.distDir, 'lab/workloads/client.js'), '--target', options.target, '--rate', String(options.rate), '--duration', String(options.durationSeconds), ...(options.udp ? ['--udp'] : [])];
  const child = running.lab.spawnIn(`${node}/client`, process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      onRecord(JSON.parse(line) as RequestRecord);
    } catch {
      // not a record
    }
  });
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { child, done };
}
