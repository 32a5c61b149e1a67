/**
 * The lab's kubelet for workloads: a Deployment-equivalent of echo pods (pod namespaces running a
 * real server, their Pod objects and the Service's EndpointSlice), their removal (graceful or
 * abrupt), and a client pod whose requests are reported one by one.
 */
import { type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ServiceStatus } from '../../lib/agent-api.js';
import { UserError } from '../../lib/errors.js';
import { labApi } from '../cluster/api.js';
import type { RunningLab } from '../cluster/index.js';
import { LAB_PORTS } from '../cluster/paths.js';
import { logSinceStart, startProcess, stopProcesses, waitReady } from '../cluster/processes.js';
import { type NodePlan, podAddresses } from '../topology/plan.js';
import type { RequestRecord } from './client.js';

const DRAIN_GRACE_MS = 5_000;
const DRAIN_POLL_MS = 20;

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

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

function workersOf(running: RunningLab, cluster: string): NodePlan[] {
  const nodes = running.plan.nodes.filter((n) => n.cluster === cluster && n.role === 'worker');
  if (nodes.length === 0) throw new UserError(`the lab has no cluster "${cluster}"`);
  return nodes;
}

/** Pods spread over the workers round-robin, each with an address number free on its node. Pure. */
export function placePods(spec: EchoSpec, workers: string[], slotOffset = 10): Array<{ pod: string; node: string; slot: number }> {
  return Array.from({ length: spec.replicas }, (_, i) => ({
    pod: `${spec.name}-${i + 1}`,
    node: workers[i % workers.length],
    slot: slotOffset + Math.floor(i / workers.length),
  }));
}

export async function ensureNamespace(running: RunningLab, cluster: string, namespace: string): Promise<void> {
  await labApi(running.kubeconfig, cluster).put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
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
  await ensureNamespace(running, cluster, spec.namespace);
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

/** Starts the echo pods of a cluster and publishes them (Pod objects, then a ready EndpointSlice). */
export async function deployEcho(running: RunningLab, cluster: string, spec: EchoSpec, distDir: string): Promise<Backend[]> {
  await ensureNamespace(running, cluster, spec.namespace);
  const workers = workersOf(running, cluster);
  const api = labApi(running.kubeconfig, cluster);
  const backends = await Promise.all(
    placePods(spec, workers.map((w) => w.name)).map(async ({ pod, node, slot }) => {
      const nodePlan = workers.find((w) => w.name === node)!;
      const { ipv4, ipv6 } = podAddresses(nodePlan, slot);
      await running.lab.addPod(node, pod, ipv4, ipv6);
      const proc = startProcess(
        running.lab,
        `${cluster}-${pod}`,
        process.execPath,
        [join(distDir, 'lab/workloads/echo-server.js'), '--identity', `${cluster}/${pod}`, '--port', String(spec.targetPort)],
        { target: `${node}/${pod}` },
      );
      await waitReady(proc, `echo pod ${cluster}/${pod}`, async () => /listening/.test(logSinceStart(proc)));
      await api.put(podObject(spec, pod, nodePlan, ipv4));
      return { cluster, node, pod, ipv4 };
    }),
  );
  await api.put(endpointSlice(spec, backends));
  return backends;
}

/**
 * Removes backends. Graceful: the EndpointSlice drops them first (as a terminating pod's would),
 * then the servers stop. Abrupt: the pods just die, the API still says ready (a node crash).
 */
export async function removeBackends(running: RunningLab, spec: EchoSpec, backends: Backend[], graceful: boolean): Promise<void> {
  if (backends.length === 0) return;
  const cluster = backends[0].cluster;
  const api = labApi(running.kubeconfig, cluster);
  if (graceful) {
    await api.put(endpointSlice(spec, []));
    await drainFromAgents(running, backends);
    await stopProcesses(running.plan.prefix, backends.map((b) => `${cluster}-${b.pod}`));
  }
  await Promise.all(backends.map((b) => running.lab.removePod(b.node, b.pod)));
  if (graceful)
    for (const b of backends) await api.remove({ apiVersion: 'v1', kind: 'Pod', metadata: { name: b.pod, namespace: spec.namespace } });
}

/**
 * The lab's preStop hook: a graceful pod keeps serving until no agent of the mesh still offers it
 * as an active backend (the EndpointSlice update takes a few ms to reach every map), as a real
 * deployment does with a preStop delay. Bounded like a termination grace period.
 */
async function drainFromAgents(running: RunningLab, backends: Backend[]): Promise<void> {
  const leaving = new Set(backends.map((b) => b.ipv4));
  const agents = running.plan.nodes.filter((n) => n.role === 'worker');
  const deadline = Date.now() + DRAIN_GRACE_MS;
  while (Date.now() < deadline) {
    const offered = await Promise.all(agents.map((node) => offersAny(node, leaving)));
    if (!offered.includes(true)) return;
    await delay(DRAIN_POLL_MS);
  }
}

async function offersAny(node: NodePlan, addrs: Set<string>): Promise<boolean> {
  try {
    const res = await fetch(`http://${node.ipv4}:${LAB_PORTS.agentStatus}/status`, { signal: AbortSignal.timeout(1000) });
    const status = (await res.json()) as { services?: ServiceStatus[] };
    return (status.services ?? []).some((svc) =>
      svc.frontends.some((f) => f.backends.some((b) => b.state === 'active' && addrs.has(b.addr))),
    );
  } catch {
    return false; // an agent that does not answer cannot be waited for
  }
}

function podObject(spec: EchoSpec, pod: string, node: NodePlan, ip: string): KubernetesObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: pod, namespace: spec.namespace, labels: { app: spec.name } },
    spec: { nodeName: node.name, containers: [{ name: 'echo', image: 'lab', ports: [{ containerPort: spec.targetPort }] }] },
    status: { phase: 'Running', hostIP: node.ipv4, podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: 'True' }] },
  } as KubernetesObject;
}

function endpointSlice(spec: EchoSpec, backends: Backend[]): KubernetesObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${spec.name}-lab`, namespace: spec.namespace, labels: { [SERVICE_NAME_LABEL]: spec.name } },
    addressType: 'IPv4',
    endpoints: backends.map((b) => ({
      addresses: [b.ipv4],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: b.node,
      targetRef: { kind: 'Pod', name: b.pod, namespace: spec.namespace },
    })),
    ports: ['TCP', 'UDP'].map((protocol) => ({ name: protocol.toLowerCase(), protocol, port: spec.targetPort })),
  } as KubernetesObject;
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
