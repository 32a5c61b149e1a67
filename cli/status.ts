/**
 * `clustermesh status`: the apiserver's readiness, how many agents are connected to each remote
 * cluster, the global services, and every problem with a hint. Gathering (I/O) is separate from
 * the summary (pure), which decides readiness for `--wait`.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { parseServicePolicy } from '../lib/k8s/annotations.js';
import { errorMessage } from '../lib/errors.js';
import { remoteNames } from './connect.js';
import { CONFIG_MAP, REMOTES_SECRET } from './install.js';
import { type Cluster, listObjects, readConfigMapData, readObject, readSecretData } from './kube.js';

export const AGENT_LABEL = 'app.kubernetes.io/name=clustermesh-agent';
const DEFAULT_STATUS_PORT = 9878;
export const PROBE_TIMEOUT_MS = 2000;

/** What an agent's `GET /status` answers (the fields status reads). */
export interface AgentStatus {
  cluster: string | { name: string; id: number };
  node: string;
  remotes: AgentRemote[];
}

/** One remote as an agent reports it; `synced` per prefix and `counts` in the agent's detailed form. */
export interface AgentRemote {
  name: string;
  id?: number;
  connected: boolean;
  synced: boolean | Record<string, boolean>;
  ready: boolean;
  services?: number;
  nodes?: number;
  counts?: { services?: number; nodes?: number };
  lastError?: string | null;
  lastFailure?: string | null;
}

/** Flat view of a remote: synced = every prefix synced; counts wherever the agent put them. Pure. */
export function normaliseRemote(remote: AgentRemote) {
  const synced = typeof remote.synced === 'boolean' ? remote.synced : Object.values(remote.synced ?? {}).every(Boolean);
  return {
    name: remote.name,
    connected: remote.connected,
    synced,
    services: remote.counts?.services ?? remote.services ?? 0,
    nodes: remote.counts?.nodes ?? remote.nodes ?? 0,
    lastError: remote.lastError ?? null,
  };
}

export interface AgentProbe {
  node: string;
  url: string;
  status?: AgentStatus;
  error?: string;
}

export interface MinAvgMax {
  min: number;
  avg: number;
  max: number;
}

export interface RemoteSummary {
  name: string;
  /** agents connected (and synced) to this remote, of `agents` */
  connected: number;
  synced: number;
  agents: number;
  services: MinAvgMax;
  nodes: MinAvgMax;
}

export interface Problem {
  message: string;
  hint: string;
}

export interface GlobalService {
  namespace: string;
  name: string;
  affinity: string;
  shared: boolean;
}

/** cached: the kvstoremesh mirrors the peers into this cluster's etcd and the agents read only it. */
export type MeshMode = 'cached' | 'direct';

export interface StatusReport {
  context: string;
  cluster?: { name: string; id: number };
  mode: MeshMode;
  apiserver: { ready: boolean; detail: string };
  agents: { total: number; reachable: number };
  remotes: RemoteSummary[];
  globalServices: GlobalService[];
  errors: Problem[];
  ready: boolean;
}

export interface StatusInput {
  context: string;
  cluster?: { name: string; id: number };
  mode: MeshMode;
  apiserver: { ready: boolean; detail: string };
  /** the peers this cluster's remotes Secret lists */
  expectedRemotes: string[];
  agents: AgentProbe[];
  globalServices: GlobalService[];
  problems: Problem[];
}

function minAvgMax(values: number[]): MinAvgMax {
  if (values.length === 0) return { min: 0, avg: 0, max: 0 };
  const sum = values.reduce((a, b) => a + b, 0);
  return { min: Math.min(...values), avg: Math.round((sum / values.length) * 10) / 10, max: Math.max(...values) };
}

/** Pure: the report, with readiness = apiserver ready, every agent reachable and synced to every expected remote. */
export function summarise(input: StatusInput): StatusReport {
  const errors = [...input.problems];
  if (!input.apiserver.ready)
    errors.push({ message: `clustermesh-apiserver is not ready: ${input.apiserver.detail}`, hint: 'check its logs and its etcd (kubectl -n clustermesh-system logs deploy/clustermesh-apiserver --all-containers)' });
  const reachable = input.agents.filter((a) => a.status);
  for (const agent of input.agents.filter((a) => !a.status))
    errors.push({ message: `agent on ${agent.node} did not answer at ${agent.url}: ${agent.error}`, hint: 'is the agent running on that node? its status API must be reachable from here' });
  if (input.agents.length === 0)
    errors.push({ message: 'no clustermesh agents found', hint: 'check the clustermesh-agent DaemonSet (kubectl -n clustermesh-system get ds)' });
  const names = [...new Set([...input.expectedRemotes, ...reachable.flatMap((a) => a.status!.remotes.map((r) => r.name))])].sort();
  const remotes = names.map((name) => summariseRemote(name, reachable, input.agents.length, errors, input.expectedRemotes.includes(name), input.mode));
  const allConnected = remotes.every((r) => !input.expectedRemotes.includes(r.name) || r.synced === input.agents.length);
  return {
    context: input.context,
    cluster: input.cluster,
    mode: input.mode,
    apiserver: input.apiserver,
    agents: { total: input.agents.length, reachable: reachable.length },
    remotes,
    globalServices: input.globalServices,
    errors,
    ready: input.apiserver.ready && input.agents.length > 0 && reachable.length === input.agents.length && allConnected && input.problems.length === 0,
  };
}

/** `agents` are the ones that answered; `total` counts every agent, so [n/total] shows the silent ones. */
function summariseRemote(name: string, agents: AgentProbe[], total: number, errors: Problem[], expected: boolean, mode: MeshMode): RemoteSummary {
  const views = agents.map((a) => {
    const remote = a.status!.remotes.find((r) => r.name === name);
    return { node: a.node, remote: remote && normaliseRemote(remote) };
  });
  for (const { node, remote } of views) {
    if (!expected && remote) errors.push({ message: `agent on ${node} still has remote ${name}, which is not in the ${REMOTES_SECRET} Secret`, hint: 'it drains once the agent sees the Secret change' });
    if (expected && !remote) errors.push({ message: `agent on ${node} does not know remote ${name} yet`, hint: `the ${REMOTES_SECRET} Secret reaches agents through their mounted config directory; wait or check the agent log` });
    else if (expected && remote && !remote.connected)
      errors.push({
        message: `agent on ${node} is not connected to ${name}${mode === 'cached' ? ' (through the local cache)' : ''}: ${remote.lastError ?? 'no error reported'}`,
        hint:
          mode === 'cached'
            ? `check the kvstoremesh (kubectl -n clustermesh-system logs deploy/clustermesh-apiserver -c kvstoremesh): it must reach ${name}'s etcd, and ${node} this cluster's etcd`
            : `check that ${name}'s etcd endpoint is reachable from ${node} and that connect ran after both installs`,
      });
  }
  const present = views.flatMap((v) => (v.remote ? [v.remote] : []));
  return {
    name,
    connected: present.filter((r) => r.connected).length,
    synced: present.filter((r) => r.connected && r.synced).length,
    agents: total,
    services: minAvgMax(present.map((r) => r.services)),
    nodes: minAvgMax(present.map((r) => r.nodes)),
  };
}

// --- gathering ------------------------------------------------------------------------------------

type Pod = KubernetesObject & {
  spec?: { nodeName?: string; containers?: Array<{ args?: string[] }> };
  status?: { hostIP?: string; podIP?: string };
};

/** Where an agent pod's status API is: its node's address and the port of its --status-addr. */
export function agentStatusBaseUrl(pod: Pod, fallbackPort: number): string | undefined {
  const host = pod.status?.hostIP ?? pod.status?.podIP;
  if (!host) return undefined;
  const arg = pod.spec?.containers?.flatMap((c) => c.args ?? []).find((a) => a.startsWith('--status-addr='));
  const port = arg ? Number(arg.slice(arg.lastIndexOf(':') + 1)) : fallbackPort;
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

export interface AgentEndpoint {
  node: string;
  /** the status API (`http://host:port`); absent while the pod has no address */
  baseUrl?: string;
}

/** The agents of a cluster: the DaemonSet's pods, the status port from clustermesh-config. */
export async function findAgents(cluster: Cluster, namespace: string, config: Record<string, string>): Promise<AgentEndpoint[]> {
  const pods = await listObjects<Pod>(cluster, 'v1', 'Pod', namespace, AGENT_LABEL);
  const statusPort = Number(config['agent-status-port'] ?? DEFAULT_STATUS_PORT);
  return pods.map((pod) => ({ node: pod.spec?.nodeName ?? pod.metadata?.name ?? '?', baseUrl: agentStatusBaseUrl(pod, statusPort) }));
}

/** Why a fetch failed, in one word where Node gives one (ECONNREFUSED, ETIMEDOUT, …). */
export function fetchFailure(err: unknown): string {
  return (err as { cause?: { code?: string } }).cause?.code ?? errorMessage(err);
}

async function probeAgent(node: string, url: string): Promise<AgentProbe> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    if (!res.ok) return { node, url, error: `HTTP ${res.status}` };
    return { node, url, status: (await res.json()) as AgentStatus };
  } catch (err) {
    return { node, url, error: fetchFailure(err) };
  }
}

async function apiserverReadiness(cluster: Cluster, namespace: string, healthUrl: string | undefined) {
  if (healthUrl) {
    try {
      const res = await fetch(`${healthUrl.replace(/\/$/, '')}/readyz`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
      return { ready: res.ok, detail: res.ok ? 'ready' : `/readyz answered HTTP ${res.status}` };
    } catch (err) {
      return { ready: false, detail: `/readyz at ${healthUrl}: ${fetchFailure(err)}` };
    }
  }
  type Deployment = KubernetesObject & { status?: { readyReplicas?: number; replicas?: number } };
  const deploy = await readObject<Deployment>(cluster, { apiVersion: 'apps/v1', kind: 'Deployment', namespace, name: 'clustermesh-apiserver' });
  if (!deploy) return { ready: false, detail: 'no Deployment clustermesh-apiserver (run clustermesh install)' };
  const ready = deploy.status?.readyReplicas ?? 0;
  return { ready: ready > 0, detail: `${ready}/${deploy.status?.replicas ?? 0} replicas ready` };
}

type Service = KubernetesObject & { metadata: { namespace?: string; name?: string; annotations?: Record<string, string> } };

async function globalServices(cluster: Cluster, problems: Problem[]): Promise<GlobalService[]> {
  const services = await listObjects<Service>(cluster, 'v1', 'Service');
  return services.flatMap((svc) => {
    const policy = parseServicePolicy(svc.metadata.annotations);
    const id = `${svc.metadata.namespace}/${svc.metadata.name}`;
    if (!policy.ok) {
      problems.push({ message: `Service ${id}: ${policy.error}`, hint: `fix it with clustermesh service global ${id} …` });
      return [];
    }
    if (!policy.value.global) return [];
    return [{ namespace: svc.metadata.namespace ?? '', name: svc.metadata.name ?? '', affinity: policy.value.affinity, shared: policy.value.shared }];
  });
}

export async function gatherStatus(cluster: Cluster, namespace: string): Promise<StatusReport> {
  const problems: Problem[] = [];
  const config = await readConfigMapData(cluster, namespace, CONFIG_MAP);
  if (!config) {
    return summarise({
      context: cluster.context,
      mode: 'direct',
      apiserver: { ready: false, detail: 'not installed' },
      expectedRemotes: [],
      agents: [],
      globalServices: [],
      problems: [{ message: `clustermesh is not installed (no ConfigMap ${namespace}/${CONFIG_MAP})`, hint: `run clustermesh install --context ${cluster.context}` }],
    });
  }
  const remotes = (await readSecretData(cluster, namespace, REMOTES_SECRET)) ?? {};
  const agents = await Promise.all(
    (await findAgents(cluster, namespace, config)).map(({ node, baseUrl }) =>
      baseUrl ? probeAgent(node, `${baseUrl}/status`) : Promise.resolve({ node, url: '(no address yet)', error: 'the pod has no host IP yet' }),
    ),
  );
  return summarise({
    context: cluster.context,
    cluster: { name: config['cluster-name'] ?? '?', id: Number(config['cluster-id']) },
    mode: config['cache-endpoint'] ? 'cached' : 'direct',
    apiserver: await apiserverReadiness(cluster, namespace, config['apiserver-health-url']),
    expectedRemotes: remoteNames(remotes),
    agents,
    globalServices: await globalServices(cluster, problems),
    problems,
  });
}

/** Polls until ready; returns the last report either way (the caller turns "not ready" into exit 3). */
export async function waitForStatus(
  cluster: Cluster,
  namespace: string,
  timeoutMs: number,
  progress: (report: StatusReport) => void = () => undefined,
): Promise<StatusReport> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const report = await gatherStatus(cluster, namespace);
    if (report.ready || Date.now() > deadline) return report;
    progress(report);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

export function formatStatus(report: StatusReport): string {
  const mam = (m: MinAvgMax) => `[${m.min}/${m.avg}/${m.max}]`;
  const lines = [
    `cluster ${report.cluster ? `${report.cluster.name} (ID ${report.cluster.id})` : '?'} — context ${report.context}: ${report.ready ? 'READY' : 'NOT READY'}`,
    `  clustermesh-apiserver: ${report.apiserver.ready ? 'ready' : 'not ready'} (${report.apiserver.detail})`,
    report.mode === 'cached'
      ? "  mode: cached (the kvstoremesh mirrors every peer into this cluster's etcd; agents read only it)"
      : "  mode: direct (every agent reads every peer's etcd)",
    `  agents: ${report.agents.reachable}/${report.agents.total} answering`,
  ];
  for (const r of report.remotes)
    lines.push(`  remote ${r.name}: ${r.synced}/${r.agents} agents connected and synced; services ${mam(r.services)}, nodes ${mam(r.nodes)} [min/avg/max]`);
  if (report.remotes.length === 0) lines.push('  remotes: none (clustermesh connect links clusters)');
  lines.push(`  global services: ${report.globalServices.map((s) => `${s.namespace}/${s.name} (affinity ${s.affinity}${s.shared ? '' : ', not shared'})`).join(', ') || 'none'}`);
  for (const e of report.errors) lines.push(`  ERROR ${e.message}\n        hint: ${e.hint}`);
  return lines.join('\n');
}
