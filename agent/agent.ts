/**
 * The agent put together (the composition root main.ts calls, and tests and benchmarks too):
 * local informers + remote clusters + health checker + datapath + routes → controller, with the
 * health/metrics and status endpoints. Stopping leaves the datapath in place (DESIGN §5).
 */
import type { Registry } from 'prom-client';
import type { Datapath } from '../lib/datapath/index.js';
import type { Logger } from '../lib/log.js';
import type { ServiceStatus } from '../lib/agent-api.js';
import { Controller, type HealthSource, type RemoteViewSource, type RouteSink } from './controller.js';
import type { IpcacheSink } from './identities.js';
import type { LocalViewSource } from './local/informers.js';
import type { ServiceExplanation } from './merge/index.js';
import { AgentMetrics } from './metrics.js';
import { serveHealth, serveStatus, type HostPort, type ListeningServer } from './server.js';

export interface Stoppable {
  stop(): void | Promise<void>;
}

export interface AgentParts {
  cluster: { name: string; id: number };
  nodeName: string;
  local: LocalViewSource & Stoppable & { start(): Promise<void> };
  remotes: RemoteViewSource & Stoppable & { start(): void | Promise<void> };
  health: HealthSource & { close(): void };
  datapath: Pick<Datapath, 'reconcile' | 'dump' | 'close' | 'programStats'>;
  routes?: RouteSink;
  /** how long a removed peer's routes stay (default: agent/routes.ts) */
  routeDrainMs?: number;
  /** the remote ipcache LPM maps (main.ts: the Datapath); absent: in memory only */
  ipcache?: IpcacheSink;
  peerCacheTtlMs: number;
  metrics: Registry;
  log: Logger;
  healthAddr?: HostPort;
  statusAddr?: HostPort;
}


export function serviceStatus(e: ServiceExplanation): ServiceStatus {
  const slash = e.service.indexOf('/');
  return {
    namespace: e.service.slice(0, slash),
    name: e.service.slice(slash + 1),
    programmed: e.programmed,
    reason: e.reason,
    warnings: e.warnings,
    vips: [...new Set(e.frontends.map((f) => f.vip))],
    frontends: e.frontends.map((f) => ({
      vip: f.vip,
      port: f.port,
      proto: f.proto,
      decision: f.decision,
      backends: f.backends.map(({ cluster, addr, port, state, reason }) => ({ cluster, addr, port, state, reason })),
    })),
    remotes: e.remotes,
  };
}

/** Health checks turned off (--no-health-checks): every backend is "unknown", which the merge trusts. */
export const NO_HEALTH_CHECKS: HealthSource & { close(): void } = {
  setTargets: () => undefined,
  status: () => 'unknown',
  onTransition: () => () => undefined,
  close: () => undefined,
};

export class Agent {
  readonly controller: Controller;
  private servers: ListeningServer[] = [];
  healthUrl?: string;
  statusUrl?: string;

  constructor(private readonly p: AgentParts) {
    const metrics = new AgentMetrics(p.metrics, {
      peers: () => p.remotes.status(),
      peerCounts: () => this.controller.peerCounts(),
      programStats: () => p.datapath.programStats(),
    });
    this.controller = new Controller({
      localCluster: p.cluster,
      local: p.local,
      remotes: p.remotes,
      health: p.health,
      datapath: p.datapath,
      routes: p.routes,
      routeDrainMs: p.routeDrainMs,
      ipcache: p.ipcache,
      peerCacheTtlMs: p.peerCacheTtlMs,
      metrics,
      log: p.log,
    });
  }

  async start(): Promise<void> {
    if (this.p.healthAddr) {
      const server = await serveHealth(this.p.healthAddr, {
        ready: () => this.controller.ready(),
        notReadyReason: () => (this.p.local.synced() ? 'first datapath reconcile pending' : 'local informers not synced'),
        metrics: this.p.metrics,
      });
      this.servers.push(server);
      this.healthUrl = server.url;
    }
    if (this.p.statusAddr) {
      const server = await serveStatus(this.p.statusAddr, {
        status: () => this.status(),
        identity: (ip) => this.controller.identityIndex().lookup(ip),
      });
      this.servers.push(server);
      this.statusUrl = server.url;
    }
    this.controller.start();
    void this.p.local.start();
    await this.p.remotes.start();
  }

  status(): unknown {
    return {
      cluster: this.p.cluster,
      node: this.p.nodeName,
      ready: this.controller.ready(),
      remotes: this.p.remotes.status(),
      peers: this.controller.peers(),
      services: this.controller.services().map(serviceStatus),
      routes: this.controller.routes(),
      datapath: this.controller.datapathTotals(),
      identities: this.controller.identityIndex().size,
    };
  }

  /** Stops watching and probing; the datapath's maps and attachments stay as they are. */
  async stop(): Promise<void> {
    await this.p.remotes.stop();
    await this.p.local.stop();
    await this.controller.stop();
    this.p.health.close();
    this.p.datapath.close();
    await Promise.all(this.servers.map((s) => s.close()));
    this.servers = [];
  }
}
