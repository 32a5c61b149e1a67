/**
 * `clustermesh identity IP`: which cluster of the mesh, namespace/pod and labels an address
 * belongs to, as the agents of one cluster see it (their remote ipcache, `GET /identity?ip=` on
 * the status API; found the way `clustermesh status` finds them). Asking is I/O; checking the
 * address, deciding from the answers and formatting are pure.
 */
import type { IdentityRecord } from '../lib/agent-api.js';
import { UserError } from '../lib/errors.js';
import { canonicalIp } from '../lib/net/ip.js';
import { CONFIG_MAP } from './install.js';
import { type Cluster, readConfigMapData } from './kube.js';
import { PROBE_TIMEOUT_MS, fetchFailure, findAgents, type AgentEndpoint } from './status.js';

/** Agents asked at once; every agent holds the same remote views, so the first answers decide. */
const ASK_AT_ONCE = 8;


export type IdentityProbe = { node: string; record: IdentityRecord } | { node: string; unclaimed: true } | { node: string; error: string };

export interface IdentityAnswer {
  ip: string;
  /** the node whose agent answered */
  node: string;
  record: IdentityRecord;
}

/** The address in canonical form; anything else is one line (exit 1). */
export function parseIdentityIp(text: string): string {
  const ip = canonicalIp(text);
  if (ip === null) throw new UserError(`"${text}" is not an IP address: pass one IPv4 or IPv6 address, e.g. clustermesh identity 10.102.1.5`);
  return ip;
}

/** The answer from the agents' replies: any claim wins; otherwise one line saying why there is none. */
export function decideIdentity(ip: string, context: string, probes: readonly IdentityProbe[]): IdentityAnswer {
  for (const probe of probes) if ('record' in probe) return { ip, node: probe.node, record: probe.record };
  if (probes.length === 0) throw new UserError(`no clustermesh agents found in context ${context}: check the clustermesh-agent DaemonSet`);
  if (probes.some((p) => 'unclaimed' in p)) throw new UserError(`no cluster of the mesh claims ${ip} (asked the agents of context ${context})`);
  const failures = probes.map((p) => `${p.node}: ${'error' in p ? p.error : '?'}`).join('; ');
  throw new UserError(`no agent of context ${context} answered (${failures}): check clustermesh status --context ${context}`);
}

/** Cilium's "k8s:a=b;k8s:c=d;" as a list; null stays null (unknown identity). */
export function labelList(labels: string | null): string[] | null {
  return labels === null ? null : labels.split(';').filter((l) => l !== '');
}

export function formatIdentity(answer: IdentityAnswer): string {
  const r = answer.record;
  const labels = labelList(r.labels);
  return [
    `${answer.ip}: cluster ${r.cluster} (ID ${r.clusterId}), ${r.pod ? `pod ${r.namespace}/${r.pod}` : 'no pod'}`,
    `  identity ${r.identity}${labels ? '' : ` (labels unknown: ${r.cluster} published no identity ${r.identity})`}`,
    ...(labels && labels.length > 0 ? ['  labels', ...labels.map((l) => `    ${l}`)] : []),
    `  entry ${r.prefix}${r.hostIP ? ` on host ${r.hostIP}` : ''} (answered by the agent on ${answer.node})`,
  ].join('\n');
}

export function identityJson(answer: IdentityAnswer) {
  const { record: r } = answer;
  return {
    ip: answer.ip,
    cluster: r.cluster,
    clusterId: r.clusterId,
    namespace: r.namespace,
    pod: r.pod,
    identity: r.identity,
    labels: labelList(r.labels),
    prefix: r.prefix,
    hostIP: r.hostIP,
    answeredBy: answer.node,
  };
}

// --- asking ---------------------------------------------------------------------------------------

async function askAgent(agent: AgentEndpoint, ip: string): Promise<IdentityProbe> {
  const { node, baseUrl } = agent;
  if (!baseUrl) return { node, error: 'the pod has no host IP yet' };
  try {
    const res = await fetch(`${baseUrl}/identity?ip=${encodeURIComponent(ip)}`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    const body = await res.text();
    if (res.ok) return { node, record: JSON.parse(body) as IdentityRecord };
    // The agent says "nobody claims it" in JSON; a plain 404 is an agent without this endpoint.
    if (res.status === 404 && res.headers.get('content-type')?.startsWith('application/json')) return { node, unclaimed: true };
    return { node, error: `HTTP ${res.status} from ${baseUrl}/identity` };
  } catch (err) {
    return { node, error: fetchFailure(err) };
  }
}

/** Asks the agents of `cluster`, a few at a time, until one gives a definite answer. */
export async function lookupIdentity(cluster: Cluster, namespace: string, ip: string): Promise<IdentityAnswer> {
  const config = await readConfigMapData(cluster, namespace, CONFIG_MAP);
  if (!config)
    throw new UserError(`clustermesh is not installed in context ${cluster.context} (no ConfigMap ${namespace}/${CONFIG_MAP}): run clustermesh install --context ${cluster.context}`);
  const agents = await findAgents(cluster, namespace, config);
  const probes: IdentityProbe[] = [];
  for (let i = 0; i < agents.length && !probes.some((p) => !('error' in p)); i += ASK_AT_ONCE) {
    probes.push(...(await Promise.all(agents.slice(i, i + ASK_AT_ONCE).map((agent) => askAgent(agent, ip)))));
  }
  return decideIdentity(ip, cluster.context, probes);
}
