/**
 * Crashes and outages of the chart's pods, as a node or a process failure would cause them: the
 * daemons run as pods of the lab kubelets (lab/kubelet), so a killed process is restarted by its
 * kubelet, and an outage that lasts is a kubelet frozen (SIGSTOP) while its pods' processes are
 * killed — the API keeps listing them, as when a node hangs — until it is thawed.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { labKubeConfig } from '../../lab/cluster/api.js';
import { LAB_NAMESPACE, ETCD_ENDPOINT_ANNOTATION, type RunningLab, kubeletPid } from '../../lab/cluster/index.js';
import { LAB_PORTS } from '../../lab/cluster/paths.js';
import { isAlive, killProcesses } from '../../lab/cluster/processes.js';
import { createEtcdClient } from '../../lib/kvstore/etcd.js';
import { waitFor } from './wait.js';

const ADMIN_CERT_SECRET = 'clustermesh-apiserver-admin-cert';
const APISERVER_LABEL = 'app.kubernetes.io/name=clustermesh-apiserver';

function core(running: RunningLab, cluster: string): CoreV1Api {
  return labKubeConfig(running.kubeconfig, cluster).makeApiClient(CoreV1Api);
}

/** The node address its agent's status API listens on. */
export function agentStatusUrl(running: RunningLab, node: string): string {
  const plan = running.plan.nodes.find((n) => n.name === node);
  if (!plan) throw new Error(`the lab has no node ${node}`);
  return `http://${plan.ipv4}:${LAB_PORTS.agentStatus}`;
}

/** argv of a running process (NUL-separated /proc/<pid>/cmdline). */
function processArgv(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0$/, '').split('\0');
  } catch {
    return [];
  }
}

/** Pids of the processes whose argv satisfies `match`. */
function processesWhere(match: (argv: string[]) => boolean): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => pid !== process.pid && match(processArgv(pid)));
}

/** A node's agent container's process: the chart runs `node …/agent/main.js --node-name=<node>`. */
function agentPids(node: string): number[] {
  return processesWhere((argv) => argv.some((a) => a.endsWith('agent/main.js')) && argv.includes(`--node-name=${node}`));
}

/**
 * SIGKILLs a node's agent, as a crash; its kubelet starts it again. Resolves once the new
 * process's status API answers.
 */
export async function restartAgent(running: RunningLab, node: string): Promise<void> {
  const before = agentPids(node);
  await killProcesses(before, `the agent on ${node}`);
  const url = `${agentStatusUrl(running, node)}/status`;
  await waitFor(
    `the agent on ${node} restarted by its kubelet`,
    async () => agentPids(node).length > 0 && (await fetch(url, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false)),
    Boolean,
    30_000,
    50,
  );
}

/** A node whose kubelet is frozen: its pods neither restart nor report until `thaw`. */
export interface FrozenNode {
  node: string;
  thaw(): void;
}

export function freezeKubelet(running: RunningLab, node: string): FrozenNode {
  const pid = kubeletPid(running, node);
  if (pid === undefined) throw new Error(`the kubelet of ${node} is not running (pid files in ${running.paths.pids})`);
  process.kill(pid, 'SIGSTOP');
  let frozen = true;
  return {
    node,
    thaw: () => {
      if (frozen && isAlive(pid)) process.kill(pid, 'SIGCONT');
      frozen = false;
    },
  };
}

/** The cluster's clustermesh-apiserver pod (the chart's Deployment has one replica). */
export async function apiserverPod(running: RunningLab, cluster: string): Promise<{ name: string; node: string }> {
  const pods = (await core(running, cluster).listNamespacedPod({ namespace: LAB_NAMESPACE, labelSelector: APISERVER_LABEL })).items
    .filter((p) => !p.metadata?.deletionTimestamp);
  if (pods.length !== 1) throw new Error(`${cluster} has ${pods.length} clustermesh-apiserver pods, expected 1`);
  return { name: pods[0].metadata!.name!, node: pods[0].spec!.nodeName! };
}

/** Deletes the cluster's clustermesh-apiserver pod; its Deployment makes a new one (with an empty etcd). */
export async function deleteApiserverPod(running: RunningLab, cluster: string): Promise<string> {
  const pod = await apiserverPod(running, cluster);
  await core(running, cluster).deleteNamespacedPod({ name: pod.name, namespace: LAB_NAMESPACE });
  return pod.name;
}

/** Whether a new clustermesh-apiserver pod of the cluster (not `old`) is Ready. */
export async function apiserverReady(running: RunningLab, cluster: string, old?: string): Promise<boolean> {
  const pods = (await core(running, cluster).listNamespacedPod({ namespace: LAB_NAMESPACE, labelSelector: APISERVER_LABEL })).items;
  return pods.some(
    (p) => p.metadata?.name !== old && !p.metadata?.deletionTimestamp && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
  );
}

/** An etcd client of the cluster's clustermesh-apiserver admin (what a process holding that Secret can do). */
export async function apiserverEtcdAdmin(running: RunningLab, cluster: string) {
  const api = core(running, cluster);
  const secret = await api.readNamespacedSecret({ name: ADMIN_CERT_SECRET, namespace: LAB_NAMESPACE });
  const service = await api.readNamespacedService({ name: 'clustermesh-apiserver', namespace: LAB_NAMESPACE });
  const endpoint = service.metadata?.annotations?.[ETCD_ENDPOINT_ANNOTATION];
  if (!endpoint) throw new Error(`${cluster}'s clustermesh-apiserver Service has no ${ETCD_ENDPOINT_ANNOTATION}`);
  const pem = (key: string) => Buffer.from(secret.data?.[key] ?? '', 'base64').toString();
  return createEtcdClient({ endpoints: endpoint.split(','), caPem: pem('ca.crt'), certPem: pem('tls.crt'), keyPem: pem('tls.key') });
}

/**
 * Adds flags to the cluster's agents (the chart's DaemonSet) and waits until every agent pod runs
 * them and is ready again: the DaemonSet controller replaces the pods one by one.
 */
export async function addAgentArgs(running: RunningLab, cluster: string, args: string[]): Promise<void> {
  const apps = labKubeConfig(running.kubeconfig, cluster).makeApiClient(AppsV1Api);
  const name = 'clustermesh-agent';
  await apps.patchNamespacedDaemonSet({
    name,
    namespace: LAB_NAMESPACE,
    body: args.map((value) => ({ op: 'add', path: '/spec/template/spec/containers/0/args/-', value })),
  });
  await waitFor(
    `${cluster}'s agents to run with ${args.join(' ')}`,
    async () => (await apps.readNamespacedDaemonSet({ name, namespace: LAB_NAMESPACE })).status,
    (s) => !!s && s.updatedNumberScheduled === s.desiredNumberScheduled && s.numberReady === s.desiredNumberScheduled && (s.numberUnavailable ?? 0) === 0,
    120_000,
    200,
  );
}
