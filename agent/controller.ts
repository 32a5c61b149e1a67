/**
 * The agent's loop (issue 4 items 2, 4, 5, 6, 7): any change — local informers, remote clusters,
 * a health transition, a peer cache TTL running out — schedules one reconcile; bursts coalesce
 * and two passes never overlap. A pass merges, hands the probe list to the health checker, makes
 * the datapath equal to the result (differential), syncs the pod routes (a removed peer's after a
 * drain period, agent/routes.ts) and records metrics.
 * Passes are paced by their own cost and by peers still syncing (lib/pass-pacing.ts); the
 * per-service explanations of the status API are merged only when asked for.
 */
import { performance } from 'node:perf_hooks';
import type { ReconcileStats } from '../lib/datapath/index.js';
import type { DatapathService } from '../lib/datapath/types.js';
import type { Logger } from '../lib/log.js';
import type { HealthStatus, HealthTarget, ProbeTarget } from './health/index.js';
import { IdentityIndex, type IpcacheSink } from './identities.js';
import type { LocalViewSource } from './local/informers.js';
import { mergeServices, type MergeInput, type RemoteCluster, type ServiceExplanation } from './merge/index.js';
import type { AgentMetrics, PeerCounts, PeerStatusLike } from './metrics.js';
import { nextPassAtMs, peersStillSyncing, type LastPass } from '../lib/pass-pacing.js';
import { keptPeers, withRestoredBackends, type PeerDecision, type PeerView } from './peers.js';
import {
  DEFAULT_ROUTE_DRAIN_MS,
  drainRemovedPeers,
  planRoutes,
  withRestoredRoutes,
  type DrainingPeer,
  type PlannedRoute,
  type RouteClusterView,
  type RoutePlan,
  type RouteViews,
  type RouteStatus,
} from './routes.js';

/** What the loop needs of agent/remote's RemoteClusters. */
export interface RemoteViewSource {
  onChange(listener: () => void): () => void;
  views(): PeerView[];
  status(): (PeerStatusLike & { id: number | null; connected: boolean; synced: { services: boolean; nodes: boolean } })[];
}

export interface HealthSource {
  setTargets(targets: readonly ProbeTarget[]): void;
  status(target: HealthTarget): HealthStatus;
  onTransition(listener: () => void): () => void;
}

export interface DatapathSink {
  reconcile(desired: readonly DatapathService[]): ReconcileStats;
  dump(): DatapathService[];
}

export interface RouteSink {
  /** the routes this agent owns in the kernel (also a previous run's) */
  owned(): Promise<PlannedRoute[]>;
  sync(plan: RoutePlan): Promise<RouteStatus>;
}

export interface ControllerOptions {
  localCluster: { name: string; id: number };
  local: LocalViewSource;
  remotes: RemoteViewSource;
  health: HealthSource;
  datapath: DatapathSink;
  /** absent: no pod routes (e.g. the cluster's CNI already routes between clusters) */
  routes?: RouteSink;
  /** how long a removed peer's routes stay after its backends left (default DEFAULT_ROUTE_DRAIN_MS) */
  routeDrainMs?: number;
  /** absent: the remote ipcache is kept in memory only (no LPM maps) */
  ipcache?: IpcacheSink;
  peerCacheTtlMs: number;
  metrics: AgentMetrics;
  log: Logger;
  now?: () => number;
  /** delay before a failed pass is tried again (default 1 s) */
  retryDelayMs?: number;
}

export interface DatapathTotals {
  reconciles: number;
  updates: number;
  deletes: number;
  last: ReconcileStats | null;
}

export class Controller {
  private readonly unsubscribe: (() => void)[] = [];
  private readonly now: () => number;
  private readonly routeDrainMs: number;
  private restored: DatapathService[] = [];
  private startedAtMs = 0;
  /** clusters (by ID) whose services synced at least once since start: their restored backends are stale */
  private readonly syncedOnce = new Set<number>();
  private dirty = false;
  private running: Promise<void> | null = null;
  private timer: NodeJS.Timeout | undefined;
  /** when the armed timer fires (performance.now()) */
  private timerDueMs = Infinity;
  private lastPass: LastPass | null = null;
  private recheckTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private firstPassDone = false;
  /** what the last pass merged, to explain it on demand */
  private lastMerge: MergeInput | null = null;
  private explanations: ServiceExplanation[] | null = null;
  private peerDecisions: PeerDecision[] = [];
  private routeStatus: RouteStatus = { installed: [], problems: [] };
  /** the configured peers the last route sync routed, and the removed ones still draining */
  private routedPeers: RouteClusterView[] = [];
  private drainingPeers: DrainingPeer[] = [];
  /** the owned routes found at the first route sync (a previous run's); null until read */
  private restoredRoutes: PlannedRoute[] | null = null;
  /** peers (by name) that delivered their nodes at least once since start */
  private readonly nodesSyncedOnce = new Set<string>();
  private identities = new IdentityIndex([]);
  private readonly totals: DatapathTotals = { reconciles: 0, updates: 0, deletes: 0, last: null };

  constructor(private readonly o: ControllerOptions) {
    this.now = o.now ?? Date.now;
    this.routeDrainMs = o.routeDrainMs ?? DEFAULT_ROUTE_DRAIN_MS;
  }

  start(): void {
    this.startedAtMs = this.now();
    // What the previous agent left in the pinned maps: kept for clusters that have not synced yet.
    this.restored = this.o.datapath.dump();
    const schedule = (): void => this.schedule();
    this.unsubscribe.push(this.o.local.onChange(schedule), this.o.remotes.onChange(schedule), this.o.health.onTransition(schedule));
    this.schedule();
  }

  /** Stops the loop (an ongoing pass finishes). The datapath itself is left as it is. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe.forEach((u) => u());
    clearTimeout(this.timer);
    clearTimeout(this.recheckTimer);
    await this.running;
  }

  /** Ready once the local view synced and the datapath was reconciled once. */
  ready(): boolean {
    return this.firstPassDone;
  }

  /** Resolves after the current or next pass when nothing new is pending (tests, benchmarks). */
  async idle(): Promise<void> {
    while (this.running || this.dirty) await (this.running ?? new Promise((r) => setImmediate(r)));
  }

  /**
   * The last pass's merge, explained: merged again on the first call after a pass (with the
   * health statuses of now), since at mesh scale the explanations would be most of what each
   * pass allocates and keeps, for a status API that is rarely read.
   */
  services(): readonly ServiceExplanation[] {
    if (this.explanations === null) this.explanations = this.lastMerge ? mergeServices(this.lastMerge).explanations : [];
    return this.explanations;
  }

  peers(): readonly PeerDecision[] {
    return this.peerDecisions;
  }

  routes(): RouteStatus {
    return this.routeStatus;
  }

  datapathTotals(): DatapathTotals {
    return { ...this.totals };
  }

  identityIndex(): IdentityIndex {
    return this.identities;
  }

  peerCounts(): Map<string, PeerCounts> {
    return new Map(
      this.o.remotes.views().map((v) => [
        v.name,
        {
          services: v.services.length,
          endpoints: v.services.reduce((n, s) => n + Object.keys(s.backends).length, 0),
          nodes: v.nodes.length,
        },
      ]),
    );
  }

  schedule(): void {
    if (this.stopped) return;
    this.dirty = true;
    if (!this.running) this.armPass(); // else the running pass arms the next one when it ends
  }

  /** Arms the pass timer for when pacing allows, or sooner than it is armed now. */
  private armPass(): void {
    const nowMs = performance.now();
    const dueMs = nextPassAtMs(this.lastPass, peersStillSyncing(this.o.remotes.status()), nowMs);
    if (this.timer && this.timerDueMs <= dueMs) return;
    clearTimeout(this.timer);
    this.timerDueMs = dueMs;
    // At least one macrotask of delay gathers a burst (an informer's initial list, a peer's full sync).
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerDueMs = Infinity;
      this.running = this.runPass().finally(() => {
        this.running = null;
        if (this.dirty && !this.stopped) this.armPass();
      });
    }, dueMs - nowMs);
  }

  private async runPass(): Promise<void> {
    if (!this.dirty || this.stopped) return;
    this.dirty = false;
    const startMs = performance.now();
    try {
      await this.pass();
      this.o.metrics.reconciles.inc({ result: 'ok' });
    } catch (err) {
      this.o.metrics.reconciles.inc({ result: 'error' });
      this.o.log.error({ err: String(err) }, 'reconcile failed; retrying');
      this.retryLater();
    }
    this.lastPass = { startMs, durationMs: performance.now() - startMs };
  }

  private retryLater(): void {
    clearTimeout(this.recheckTimer);
    this.recheckTimer = setTimeout(() => this.schedule(), this.o.retryDelayMs ?? 1000);
  }

  private async pass(): Promise<void> {
    // An unsynced local view would look like "every local Service deleted".
    if (!this.o.local.synced()) return;
    const nowMs = this.now();
    const peers = keptPeers(this.o.remotes.views(), this.o.peerCacheTtlMs, nowMs);
    const remote = new Map<string, RemoteCluster>(peers.kept.map((v) => [v.name, { id: v.id, services: v.services }]));
    // The health the pass decided with, kept for the status API's explanations: explained with
    // the health of a later moment, a backend could read quarantined while the maps still use it.
    const healthSeen = new Map<string, ReturnType<HealthSource['status']>>();
    const input: MergeInput = {
      localCluster: this.o.localCluster,
      localServices: this.o.local.services(),
      remote,
      health: (clusterId, addr, port) => {
        const key = `${clusterId}/${addr}/${port}`;
        let status = healthSeen.get(key);
        if (status === undefined) healthSeen.set(key, (status = this.o.health.status({ clusterId, addr, port })));
        return status;
      },
    };
    const result = mergeServices({ ...input, explain: false });
    this.o.health.setTargets(result.probeTargets);
    const restoreIds = this.restoredClusterIds(nowMs);
    const desired = withRestoredBackends(result.desired, this.restored, restoreIds);
    const stats = this.o.datapath.reconcile(desired);
    this.record(stats);
    this.lastMerge = input;
    this.explanations = null;
    this.peerDecisions = peers.decisions;
    this.identities = new IdentityIndex(peers.kept);
    this.o.ipcache?.reconcileIpcache(this.identities.ipcacheEntries());
    this.o.metrics.globalServices.set(result.programmed);
    // Routes follow the configured peers (also those past the cache TTL), not only the kept ones.
    const routed = this.o.routes ? this.routeViews(nowMs) : undefined;
    if (routed) this.peerDecisions = [...peers.decisions, ...routed.draining.map((d) => this.drainingDecision(d, nowMs))];
    this.armRecheck(
      peers.recheckAtMs,
      restoreIds.size > 0 || routed?.keepRestored ? this.startedAtMs + this.o.peerCacheTtlMs : undefined,
      routed?.recheckAtMs,
    );
    if (!this.firstPassDone) {
      this.firstPassDone = true;
      this.o.log.info({ ...stats }, 'first datapath reconcile done: ready');
    }
    if (routed) await this.syncRoutes(routed.views, routed.keepRestored);
  }

  /**
   * The peers to route now (the configured ones and the removed ones still draining), and whether
   * the routes of the previous run stay: while some peer has not delivered its nodes since start,
   * within one cache TTL of the start (as the restored backends).
   */
  private routeViews(nowMs: number): RouteViews & { keepRestored: boolean } {
    const status = this.o.remotes.status();
    for (const s of status) if (s.synced.nodes) this.nodesSyncedOnce.add(s.name);
    const keepRestored = nowMs < this.startedAtMs + this.o.peerCacheTtlMs && status.some((s) => !this.nodesSyncedOnce.has(s.name));
    const configured = this.o.remotes.views().map(({ name, nodes }) => ({ name, nodes }));
    const decision = drainRemovedPeers({
      previous: this.routedPeers,
      draining: this.drainingPeers,
      configured,
      drainMs: this.routeDrainMs,
      nowMs,
    });
    const names = (peers: readonly DrainingPeer[]): string => peers.map((d) => d.view.name).join(',');
    if (names(decision.draining) !== names(this.drainingPeers)) {
      this.o.log.info({ draining: names(decision.draining), drainMs: this.routeDrainMs }, 'removed peers whose routes still stay');
    }
    this.routedPeers = configured;
    this.drainingPeers = decision.draining;
    return { ...decision, keepRestored };
  }

  /** A removed peer still draining, as the status API lists peers. */
  private drainingDecision(d: DrainingPeer, nowMs: number): PeerDecision {
    const leftS = Math.ceil((d.removedAtMs + this.routeDrainMs - nowMs) / 1000);
    return { cluster: d.view.name, kept: false, reason: `removed from the configuration: backends drained, pod routes stay ${leftS} s more` };
  }

  /**
   * Clusters whose restored backends stay: not synced since start, within one cache TTL of the
   * start (a peer that stays unreachable is then treated like any silent peer).
   */
  private restoredClusterIds(nowMs: number): Set<number> {
    for (const s of this.o.remotes.status()) if (s.synced.services && s.id !== null) this.syncedOnce.add(s.id);
    if (nowMs >= this.startedAtMs + this.o.peerCacheTtlMs) return new Set();
    const ids = new Set<number>();
    for (const svc of this.restored) for (const b of svc.backends) if (b.clusterId !== 0 && !this.syncedOnce.has(b.clusterId)) ids.add(b.clusterId);
    return ids;
  }

  private record(stats: ReconcileStats): void {
    this.totals.reconciles++;
    this.totals.updates += stats.updates;
    this.totals.deletes += stats.deletes;
    this.totals.last = stats;
    this.o.metrics.syncDuration.observe(stats.durationMs / 1000);
    this.o.metrics.mapOps.inc({ op: 'update' }, stats.updates);
    this.o.metrics.mapOps.inc({ op: 'delete' }, stats.deletes);
    this.o.metrics.datapathEntries.set({ kind: 'service' }, stats.services);
    this.o.metrics.datapathEntries.set({ kind: 'backend' }, stats.backends);
    if (stats.updates + stats.deletes > 0) {
      this.o.log.debug({ ...stats }, 'datapath reconciled');
    }
  }

  private armRecheck(...times: (number | undefined)[]): void {
    const at = Math.min(...times.filter((t): t is number => t !== undefined));
    clearTimeout(this.recheckTimer);
    if (!Number.isFinite(at) || this.stopped) return;
    this.recheckTimer = setTimeout(() => this.schedule(), Math.max(0, at - this.now()) + 1);
  }

  private async syncRoutes(views: readonly RouteClusterView[], keepRestored: boolean): Promise<void> {
    try {
      this.restoredRoutes ??= await this.o.routes!.owned();
      const localPodCidrs = this.o.local.podCidrs();
      const plan = withRestoredRoutes(planRoutes(views, localPodCidrs), this.restoredRoutes, keepRestored, localPodCidrs);
      this.routeStatus = await this.o.routes!.sync(plan);
    } catch (err) {
      this.o.log.error({ err: String(err) }, 'pod route sync failed');
      this.routeStatus = { ...this.routeStatus, problems: [{ cluster: '', node: '', destination: '', reason: `route sync failed: ${String(err)}` }] };
      this.retryLater();
    }
    this.o.metrics.routes.set({ state: 'installed' }, this.routeStatus.installed.length);
    this.o.metrics.routes.set({ state: 'problem' }, this.routeStatus.problems.length);
  }
}
