/**
 * Cross-cluster pod routes (native routing, issue 4 item 6): a route to each remote node's pod
 * CIDR via that node's InternalIP. The plan is pure; the manager applies it with `ip route` and
 * marks its routes with its own protocol number, so it lists, changes and deletes only the routes
 * it installed (also those of a previous run) and never one it does not own.
 *
 * Routes follow the configuration, not the link: a peer whose etcd is unreachable keeps the routes
 * to its last known nodes (its data path may well be up, and its pods' connections to ours need
 * the way back), however long the outage. A peer removed from the configuration drains: its
 * backends leave the maps at once, its routes stay for a grace period so that connections already
 * going to its pods keep their path, then go (`drainRemovedPeers`). After a restart, the routes a
 * previous run left stay until every peer has delivered its nodes again (`withRestoredRoutes`).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { maskPrefixLength } from '../lib/kvstore/codecs.js';
import { MIN_POD_CIDR_PREFIX } from '../lib/kvstore/ownership.js';
import type { NodeRecord } from '../lib/kvstore/types.js';
import type { Logger } from '../lib/log.js';
import { cidrContainsIp, cidrsOverlap, formatCidr, parseCidr, type Cidr } from '../lib/net/cidr.js';
import { ipFamily } from '../lib/net/ip.js';
import { routeArgs, type RouteOperation } from '../lib/routes.js';

/** `proto 203` in `ip route`: unassigned in iproute2's rt_protos; marks the routes this agent owns. */
export const AGENT_ROUTE_PROTO = 203;

export interface RouteClusterView {
  name: string;
  nodes: readonly NodeRecord[];
}

export interface PlannedRoute {
  destination: string;
  via: string;
  /** where the route comes from (absent for routes read back from the kernel) */
  cluster?: string;
  node?: string;
}

export interface RouteProblem {
  cluster: string;
  node: string;
  destination: string;
  reason: string;
}

export interface RoutePlan {
  routes: PlannedRoute[];
  refused: RouteProblem[];
}

interface Candidate {
  cluster: string;
  node: string;
  cidr: Cidr;
  via: string | undefined;
}

function allocCidr(value: { IP: string; Mask: string } | null): Cidr | null {
  if (value === null) return null;
  const length = maskPrefixLength(value.Mask);
  if (length === null) return null;
  try {
    return parseCidr(`${value.IP}/${length}`);
  } catch {
    return null; // host bits set: reported by the caller as unusable
  }
}

function candidatesOf(view: RouteClusterView, refused: RouteProblem[]): Candidate[] {
  const out: Candidate[] = [];
  for (const node of view.nodes) {
    for (const alloc of [node.IPv4AllocCIDR, node.IPv6AllocCIDR]) {
      if (alloc === null) continue;
      const cidr = allocCidr(alloc);
      if (cidr === null) {
        refused.push({ cluster: view.name, node: node.Name, destination: `${alloc.IP}/?`, reason: 'the pod CIDR is not a network (mask or host bits)' });
        continue;
      }
      const via = node.IPAddresses.find((a) => a.Type === 'InternalIP' && ipFamily(a.IP) === cidr.family)?.IP;
      out.push({ cluster: view.name, node: node.Name, cidr, via });
    }
  }
  return out;
}

/** Why a candidate cannot be routed, before looking at the other candidates; null when it can. */
function ownProblem(c: Candidate, localPodCidrs: readonly Cidr[]): string | null {
  if (c.via === undefined) return `node has no IPv${c.cidr.family} InternalIP to route through`;
  // A second line behind ownership at import (lib/kvstore/ownership.ts), which refuses such a node.
  if (c.cidr.prefix < MIN_POD_CIDR_PREFIX[c.cidr.family]) return `/${c.cidr.prefix} is too broad for a pod CIDR (refusing to route it)`;
  if (cidrContainsIp(c.cidr, c.via)) return `next hop ${c.via} lies inside the pod CIDR itself`;
  const local = localPodCidrs.find((l) => cidrsOverlap(l, c.cidr));
  if (local) return `overlaps the local cluster's pod CIDR ${formatCidr(local)}`;
  return null;
}

/** The CIDRs among `texts` that parse (the others are reported where they come from). */
function parseCidrs(texts: readonly string[]): Cidr[] {
  return texts.flatMap((text) => {
    try {
      return [parseCidr(text)];
    } catch {
      return [];
    }
  });
}

const byDestination = (a: PlannedRoute, b: PlannedRoute): number => (a.destination < b.destination ? -1 : a.destination > b.destination ? 1 : 0);

/**
 * Every remote node's pod CIDRs, except those that cannot be routed safely. Two remote CIDRs that
 * overlap are both refused: which one is right cannot be told, and one route would steal the
 * other's traffic.
 */
export function planRoutes(views: readonly RouteClusterView[], localPodCidrs: readonly string[]): RoutePlan {
  const refused: RouteProblem[] = [];
  const local = parseCidrs(localPodCidrs);
  const sorted = [...views].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const candidates = sorted.flatMap((v) => candidatesOf(v, refused));
  const routable: Candidate[] = [];
  for (const c of candidates) {
    const problem = ownProblem(c, local);
    if (problem === null) routable.push(c);
    else refused.push({ cluster: c.cluster, node: c.node, destination: formatCidr(c.cidr), reason: problem });
  }
  const routes: PlannedRoute[] = [];
  for (const c of routable) {
    const clash = routable.find((o) => o !== c && cidrsOverlap(o.cidr, c.cidr));
    if (clash) {
      refused.push({
        cluster: c.cluster,
        node: c.node,
        destination: formatCidr(c.cidr),
        reason: `overlaps ${formatCidr(clash.cidr)} of node ${clash.node} in cluster ${clash.cluster}`,
      });
    } else {
      routes.push({ destination: formatCidr(c.cidr), via: c.via!, cluster: c.cluster, node: c.node });
    }
  }
  routes.sort(byDestination);
  return { routes, refused };
}

/** How long a removed peer's routes outlive its backends (`--route-drain`). */
export const DEFAULT_ROUTE_DRAIN_MS = 30_000;

/** A peer gone from the configuration, with the nodes it had when it went. */
export interface DrainingPeer {
  view: RouteClusterView;
  removedAtMs: number;
}

export interface RouteViews {
  /** what to plan routes for: the configured peers, then the removed ones still draining */
  views: RouteClusterView[];
  /** the removed peers still draining: the next call's `draining` */
  draining: DrainingPeer[];
  /** when the next draining peer's grace ends (the agent arms a timer for it) */
  recheckAtMs?: number;
}

/**
 * Which peers to route (pure): every configured peer, plus each peer that was routed before
 * (`previous`) and is no longer configured, until `drainMs` after it was first seen gone. A peer
 * configured again stops draining (its current view wins).
 */
export function drainRemovedPeers(input: {
  previous: readonly RouteClusterView[];
  draining: readonly DrainingPeer[];
  configured: readonly RouteClusterView[];
  drainMs: number;
  nowMs: number;
}): RouteViews {
  const configured = new Set(input.configured.map((v) => v.name));
  const stillDraining = input.draining.filter((d) => !configured.has(d.view.name));
  const alreadyDraining = new Set(stillDraining.map((d) => d.view.name));
  const justRemoved = input.previous
    .filter((v) => !configured.has(v.name) && !alreadyDraining.has(v.name))
    .map((view) => ({ view, removedAtMs: input.nowMs }));
  const draining = [...stillDraining, ...justRemoved].filter((d) => input.nowMs < d.removedAtMs + input.drainMs);
  const ends = draining.map((d) => d.removedAtMs + input.drainMs);
  return {
    views: [...input.configured, ...draining.map((d) => d.view)],
    draining,
    recheckAtMs: ends.length > 0 ? Math.min(...ends) : undefined,
  };
}

/**
 * The plan plus the routes read from the kernel at start (a previous run's) while `keep` (some
 * peer has not delivered its nodes since the start): a restart must not take away the path of
 * connections to a peer that is slow or unreachable now. A planned route wins over a restored one
 * it overlaps, and a restored one overlapping the local pod CIDRs is dropped, as the plan would.
 */
export function withRestoredRoutes(plan: RoutePlan, restored: readonly PlannedRoute[], keep: boolean, localPodCidrs: readonly string[]): RoutePlan {
  if (!keep) return plan;
  const taken = parseCidrs([...plan.routes.map((r) => r.destination), ...localPodCidrs]);
  const carried = restored.filter((r) => parseCidrs([r.destination]).every((cidr) => !taken.some((t) => cidrsOverlap(t, cidr))));
  if (carried.length === 0) return plan;
  return { routes: [...plan.routes, ...carried].sort(byDestination), refused: plan.refused };
}

export interface RouteChanges {
  add: PlannedRoute[];
  change: PlannedRoute[];
  remove: PlannedRoute[];
}

/** What to do to turn the owned routes into the wanted ones (pure). */
export function diffRoutes(owned: readonly PlannedRoute[], wanted: readonly PlannedRoute[]): RouteChanges {
  const have = new Map(owned.map((r) => [r.destination, r]));
  const want = new Map(wanted.map((r) => [r.destination, r]));
  return {
    add: wanted.filter((r) => !have.has(r.destination)),
    change: wanted.filter((r) => have.has(r.destination) && have.get(r.destination)!.via !== r.via),
    remove: owned.filter((r) => !want.has(r.destination)),
  };
}

export interface RouteStatus {
  installed: PlannedRoute[];
  /** refused by the plan, or failed to install (e.g. a route the agent does not own is in the way) */
  problems: RouteProblem[];
}

export interface RouteManagerOptions {
  log: Logger;
  /** a named network namespace; absent = the agent's own */
  netns?: string;
  proto?: number;
}

const execFileAsync = promisify(execFile);

export class RouteManager {
  private readonly proto: number;

  constructor(private readonly options: RouteManagerOptions) {
    this.proto = options.proto ?? AGENT_ROUTE_PROTO;
  }

  /** The routes carrying our protocol number, read from the kernel. */
  async owned(): Promise<PlannedRoute[]> {
    const routes: PlannedRoute[] = [];
    for (const family of ['-4', '-6']) {
      const { stdout } = await this.ip([family, '-j', 'route', 'show', 'proto', String(this.proto)]);
      const parsed = JSON.parse(stdout.trim() || '[]') as { dst: string; gateway?: string }[];
      for (const r of parsed) if (r.gateway) routes.push({ destination: r.dst.includes('/') ? r.dst : `${r.dst}/${family === '-4' ? 32 : 128}`, via: r.gateway });
    }
    return routes;
  }

  /** Makes the owned routes equal to the plan; a route that fails is reported, the others go on. */
  async sync(plan: RoutePlan): Promise<RouteStatus> {
    const owned = await this.owned();
    const changes = diffRoutes(owned, plan.routes);
    const problems = [...plan.refused];
    const failedInstalls = new Set<string>();
    for (const r of changes.remove) await this.attempt('delete', r, problems);
    for (const r of changes.change) if (!(await this.attempt('replace', r, problems))) failedInstalls.add(r.destination);
    for (const r of changes.add) if (!(await this.attempt('add', r, problems))) failedInstalls.add(r.destination);
    return { installed: plan.routes.filter((r) => !failedInstalls.has(r.destination)), problems };
  }

  /** Removes every route this agent owns (a peer-less shutdown, tests). */
  async removeAll(): Promise<void> {
    await this.sync({ routes: [], refused: [] });
  }

  private async attempt(op: RouteOperation, route: PlannedRoute, problems: RouteProblem[]): Promise<boolean> {
    try {
      await this.ip([...routeArgs(op, { destination: route.destination, via: route.via }), 'proto', String(this.proto)]);
      this.options.log.info({ op, ...route }, 'pod route updated');
      return true;
    } catch (err) {
      const stderr = String((err as { stderr?: string }).stderr ?? err).trim();
      const reason = /File exists/.test(stderr)
        ? 'a route to this CIDR that the agent does not own is already installed: left alone'
        : `ip route ${op} failed: ${stderr.split('\n')[0]}`;
      problems.push({ cluster: route.cluster ?? '', node: route.node ?? '', destination: route.destination, reason });
      this.options.log.warn({ op, ...route, reason }, 'pod route not applied');
      return false;
    }
  }

  private ip(args: string[]): Promise<{ stdout: string }> {
    const netns = this.options.netns === undefined ? [] : ['-n', this.options.netns];
    return execFileAsync('ip', [...netns, ...args]);
  }
}
