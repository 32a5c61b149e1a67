/** What an agent says about itself: its status API (/status) and its Prometheus metrics. */
import type { RunningLab } from '../../lab/cluster/index.js';
import { LAB_PORTS } from '../../lab/cluster/paths.js';
import { agentStatusUrl } from './daemons.js';

export interface BackendView {
  cluster: string;
  addr: string;
  port: number;
  state: string;
  reason: string;
}

export interface FrontendView {
  vip: string;
  port: number;
  proto: string;
  decision: string;
  backends: BackendView[];
}

export interface RemoteView {
  name: string;
  connected: boolean;
  ready: boolean;
  rejected: number;
}

/** The part of GET /status the suite reads. */
export interface AgentStatusView {
  cluster: string;
  node: string;
  ready: boolean;
  remotes: RemoteView[];
  services: Array<{ namespace: string; name: string; frontends: FrontendView[] }>;
  datapath: { reconciles: number; updates: number; deletes: number };
}

export async function agentStatus(running: RunningLab, node: string): Promise<AgentStatusView> {
  const res = await fetch(`${agentStatusUrl(running, node)}/status`, { signal: AbortSignal.timeout(2000) });
  if (!res.ok) throw new Error(`agent on ${node}: GET /status answered ${res.status}`);
  return (await res.json()) as AgentStatusView;
}

/** Raw Prometheus text of a node's agent. */
export async function agentMetricsText(running: RunningLab, node: string): Promise<string> {
  const plan = running.plan.nodes.find((n) => n.name === node)!;
  const res = await fetch(`http://${plan.ipv4}:${LAB_PORTS.agentHealth}/metrics`, { signal: AbortSignal.timeout(2000) });
  if (!res.ok) throw new Error(`agent on ${node}: GET /metrics answered ${res.status}`);
  return res.text();
}

/** Samples of `metric` by the value of one label. Pure. */
export function metricByLabel(text: string, metric: string, label: string, only: Record<string, string> = {}): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)\{([^}]*)\}\s+(\S+)/.exec(line);
    if (!m || m[1] !== metric) continue;
    if (Object.entries(only).some(([k, v]) => !m[2].includes(`${k}="${v}"`))) continue;
    const value = new RegExp(`${label}="([^"]*)"`).exec(m[2])?.[1];
    if (value !== undefined) out[value] = (out[value] ?? 0) + Number(m[3]);
  }
  return out;
}

/** The frontend `vip:port/proto` in a status, or undefined when the agent does not program it. Pure. */
export function findFrontend(status: AgentStatusView, vip: string, port: number, proto = 'TCP'): FrontendView | undefined {
  return status.services.flatMap((s) => s.frontends).find((f) => f.vip === vip && f.port === port && f.proto.toUpperCase() === proto);
}

/** Backends of a frontend in a given state, per cluster. Pure. */
export function backendsByCluster(frontend: FrontendView | undefined, state?: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const b of frontend?.backends ?? []) if (state === undefined || b.state === state) out[b.cluster] = (out[b.cluster] ?? 0) + 1;
  return out;
}

/** Map writes the agent has made since it started (updates + deletes). Pure. */
export const mapWrites = (status: AgentStatusView): number => status.datapath.updates + status.datapath.deletes;
