/** In-memory stand-ins for the controller's sources and sinks, and record builders. */
import { pino } from 'pino';
import { createMetricsRegistry } from '../../lib/metrics.js';
import type { ProgramStats, ReconcileStats } from '../../lib/datapath/index.js';
import type { DatapathService } from '../../lib/datapath/types.js';
import { parseServicePolicy } from '../../lib/k8s/annotations.js';
import { maskFromPrefixLength } from '../../lib/kvstore/codecs.js';
import type { ClusterService, NodeRecord } from '../../lib/kvstore/types.js';
import { Controller, type RemoteViewSource } from '../../agent/controller.js';
import type { HealthStatus, HealthTarget } from '../../agent/health/index.js';
import { targetKey } from '../../agent/health/index.js';
import type { LocalService } from '../../agent/merge/index.js';
import { AgentMetrics } from '../../agent/metrics.js';
import type { PeerView } from '../../agent/peers.js';
import type { PlannedRoute, RoutePlan, RouteStatus } from '../../agent/routes.js';
import type { LocalViewSource } from '../../agent/local/informers.js';

export const silentLog = pino({ level: 'silent' });

class Listeners {
  private readonly set = new Set<() => void>();
  on(l: () => void): () => void {
    this.set.add(l);
    return () => this.set.delete(l);
  }
  emit(): void {
    for (const l of this.set) l();
  }
}

export class FakeLocal implements LocalViewSource {
  isSynced = true;
  list: LocalService[] = [];
  cidrs: string[] = [];
  private readonly listeners = new Listeners();
  synced = () => this.isSynced;
  services = () => this.list;
  podCidrs = () => this.cidrs;
  onChange = (l: () => void) => this.listeners.on(l);
  set(list: LocalService[]): void {
    this.list = list;
    this.listeners.emit();
  }
}

type Status = ReturnType<RemoteViewSource['status']>[number];

export class FakeRemotes implements RemoteViewSource {
  peers: PeerView[] = [];
  synced = new Set<string>();
  private readonly listeners = new Listeners();
  onChange = (l: () => void) => this.listeners.on(l);
  views = () => this.peers;
  status = (): Status[] =>
    this.peers.map((p) => ({
      name: p.name,
      id: p.id,
      ready: p.link.state === 'connected',
      connected: p.link.state === 'connected',
      failures: 0,
      lastFailure: null,
      rejected: 0,
      synced: { services: this.synced.has(p.name), nodes: this.synced.has(p.name) },
    }));
  set(peers: PeerView[]): void {
    this.peers = peers;
    for (const p of peers) if (p.link.state === 'connected') this.synced.add(p.name);
    this.listeners.emit();
  }
}

export class FakeHealth {
  statuses = new Map<string, HealthStatus>();
  targets: HealthTarget[] = [];
  private readonly listeners = new Listeners();
  setTargets = (t: readonly HealthTarget[]) => void (this.targets = [...t]);
  status = (t: HealthTarget) => this.statuses.get(targetKey(t)) ?? 'unknown';
  onTransition = (l: () => void) => this.listeners.on(l);
  close = () => undefined;
  mark(t: HealthTarget, s: HealthStatus): void {
    this.statuses.set(targetKey(t), s);
    this.listeners.emit();
  }
}

/** Counts writes as the real datapath would: per service entry and per backend entry. */
export class FakeDatapath {
  current: DatapathService[] = [];
  calls = 0;
  /** what the programs' counters read */
  stats: ProgramStats = { sockStateFailed: 0, sockPeerReplaced: 0 };
  constructor(initial: DatapathService[] = []) {
    this.current = initial;
  }
  reconcile = (desired: readonly DatapathService[]): ReconcileStats => {
    this.calls++;
    const entries = (list: readonly DatapathService[]) =>
      new Set(list.flatMap((s) => [`${s.vip}|${s.port}|${s.proto}`, ...s.backends.map((b) => `${s.vip}|${s.port}|${JSON.stringify(b)}`)]));
    const before = entries(this.current);
    const after = entries(desired);
    const updates = [...after].filter((e) => !before.has(e)).length;
    const deletes = [...before].filter((e) => !after.has(e)).length;
    this.current = desired.map((s) => ({ ...s, backends: [...s.backends] }));
    return { updates, deletes, services: desired.length, backends: 0, durationMs: 0 };
  };
  dump = () => this.current;
  programStats = () => this.stats;
  close = () => undefined;
}

/** Installs every planned route at once; `destinations` is what the kernel would hold. */
export class FakeRoutes {
  destinations: string[];
  constructor(private readonly restored: PlannedRoute[] = []) {
    this.destinations = restored.map((r) => r.destination);
  }
  owned = async (): Promise<PlannedRoute[]> => this.restored;
  sync = async (plan: RoutePlan): Promise<RouteStatus> => {
    this.destinations = plan.routes.map((r) => r.destination);
    return { installed: plan.routes, problems: plan.refused };
  };
}

/** A remote node with an IPv4 pod CIDR (a /24 given as "a.b.c.0/24") and its InternalIP. */
export function remoteNode(cluster: string, name: string, internalIP: string, podCidr: string): NodeRecord {
  const [ip, length] = podCidr.split('/');
  return {
    Name: name,
    Cluster: cluster,
    IPAddresses: [{ Type: 'InternalIP', IP: internalIP }],
    IPv4AllocCIDR: { IP: ip, Mask: maskFromPrefixLength(Number(length), 4) },
    IPv6AllocCIDR: null,
    ClusterID: 2,
  };
}

export function localService(
  name: string,
  vip: string,
  annotations: Record<string, string>,
  backends: string[] = [],
  namespace = 'default',
): LocalService {
  return {
    namespace,
    name,
    clusterIPs: [vip],
    ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    policy: parseServicePolicy(annotations),
    localBackends: backends.map((addr) => ({ addr, ports: { http: 8080 }, ready: true, serving: true, terminating: false })),
  };
}

export function clusterService(
  cluster: string,
  clusterID: number,
  name: string,
  backends: string[],
  opts: { shared?: boolean; global?: boolean; port?: number; namespace?: string } = {},
): ClusterService {
  return {
    cluster,
    namespace: opts.namespace ?? 'default',
    name,
    frontends: { '10.112.0.10': { http: { Protocol: 'TCP', Port: 80 } } },
    backends: Object.fromEntries(backends.map((a) => [a, { http: { Protocol: 'TCP' as const, Port: opts.port ?? 8080 } }])),
    labels: {},
    selector: {},
    includeExternal: opts.global ?? true,
    shared: opts.shared ?? true,
    clusterID,
  };
}

export function peer(name: string, id: number, services: ClusterService[], link: PeerView['link'] = { state: 'connected' }): PeerView {
  return { name, id, link, services, nodes: [], identities: new Map(), ipcache: [] };
}

export interface ControllerRig {
  controller: Controller;
  local: FakeLocal;
  remotes: FakeRemotes;
  health: FakeHealth;
  datapath: FakeDatapath;
  routes: FakeRoutes;
  clock: { now: number };
}

/** `routeDrainMs` given: the controller syncs pod routes into `routes` (holding `restoredRoutes` at start). */
export function controllerRig(
  opts: { ttlMs?: number; restored?: DatapathService[]; routeDrainMs?: number; restoredRoutes?: PlannedRoute[] } = {},
): ControllerRig {
  const local = new FakeLocal();
  const remotes = new FakeRemotes();
  const health = new FakeHealth();
  const datapath = new FakeDatapath(opts.restored);
  const routes = new FakeRoutes(opts.restoredRoutes);
  const clock = { now: 1_000_000 };
  const registry = createMetricsRegistry();
  const controller = new Controller({
    localCluster: { name: 'east', id: 1 },
    local,
    remotes,
    health,
    datapath,
    routes: opts.routeDrainMs === undefined ? undefined : routes,
    routeDrainMs: opts.routeDrainMs,
    peerCacheTtlMs: opts.ttlMs ?? 60_000,
    metrics: new AgentMetrics(registry, { peers: () => remotes.status(), peerCounts: () => new Map(), programStats: datapath.programStats }),
    log: silentLog,
    now: () => clock.now,
  });
  return { controller, local, remotes, health, datapath, routes, clock };
}
