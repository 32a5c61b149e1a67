/**
 * The agent loop against in-memory sources: what reaches the datapath for each kind of change,
 * peer retention (cache TTL, removal), restart carry-over, coalescing.
 */
import { targetKey } from '../../agent/health/types.js';
import type { DatapathService } from '../../lib/datapath/types.js';
import { clusterService, controllerRig, localService, peer, remoteNode, type ControllerRig } from './fakes.js';

const GLOBAL = { 'clustermesh.io/global': 'true' };
const VIP = '10.111.0.10';

let rig: ControllerRig;
afterEach(async () => {
  await rig?.controller.stop();
});

const backendsOf = (vip = VIP): string[] =>
  (rig.datapath.current.find((s) => s.vip === vip)?.backends ?? []).map((b) => `${b.clusterId}:${b.addr}:${b.port}:${b.state}`);

async function settle(): Promise<void> {
  await rig.controller.idle();
}

describe('the agent loop', () => {
  beforeEach(async () => {
    rig = controllerRig({ ttlMs: 60_000 });
    rig.local.set([localService('echo', VIP, GLOBAL, ['10.101.1.5']), localService('plain', '10.111.0.20', {}, ['10.101.1.6'])]);
    rig.controller.start();
    await settle();
  });

  it('programs a global service with the local ClusterIP and the peer’s backends', async () => {
    rig.remotes.set([peer('west', 2, [clusterService('west', 2, 'echo', ['10.102.1.5', '10.102.1.6'])])]);
    await settle();
    expect(backendsOf()).toEqual(['0:10.101.1.5:8080:active', '2:10.102.1.5:8080:active', '2:10.102.1.6:8080:active']);
    expect(rig.controller.ready()).toBe(true);
    expect(rig.health.targets.map((t) => t.addr).sort()).toEqual(['10.101.1.5', '10.102.1.5', '10.102.1.6']);
  });

  it('never gives a non-global local service remote backends, even when a peer publishes it', async () => {
    rig.remotes.set([peer('west', 2, [clusterService('west', 2, 'plain', ['10.102.1.9'])])]);
    await settle();
    expect(rig.datapath.current.find((s) => s.vip === '10.111.0.20')).toBeUndefined();
    expect(rig.controller.services().find((s) => s.service === 'default/plain')?.programmed).toBe(false);
  });

  it('ignores a peer’s service that is global but not shared', async () => {
    rig.remotes.set([peer('west', 2, [clusterService('west', 2, 'echo', ['10.102.1.5'], { shared: false })])]);
    await settle();
    expect(backendsOf()).toEqual(['0:10.101.1.5:8080:active']);
  });

  it('keeps a disconnected peer’s backends until the cache TTL, then drops them', async () => {
    const svc = clusterService('west', 2, 'echo', ['10.102.1.5']);
    rig.remotes.set([peer('west', 2, [svc])]);
    await settle();
    rig.remotes.set([peer('west', 2, [svc], { state: 'disconnected', sinceMs: rig.clock.now })]);
    await settle();
    rig.clock.now += 59_000;
    rig.controller.schedule();
    await settle();
    expect(backendsOf()).toContain('2:10.102.1.5:8080:active');
    rig.clock.now += 2_000;
    rig.controller.schedule();
    await settle();
    expect(backendsOf()).toEqual(['0:10.101.1.5:8080:active']);
    expect(rig.controller.peers()[0]).toMatchObject({ cluster: 'west', kept: false });
  });

  it('drains a removed peer at once', async () => {
    rig.remotes.set([peer('west', 2, [clusterService('west', 2, 'echo', ['10.102.1.5'])])]);
    await settle();
    rig.remotes.set([]);
    await settle();
    expect(backendsOf()).toEqual(['0:10.101.1.5:8080:active']);
  });

  it('quarantines a backend the health checker reports unhealthy', async () => {
    rig.remotes.set([peer('west', 2, [clusterService('west', 2, 'echo', ['10.102.1.5', '10.102.1.6'])])]);
    await settle();
    rig.health.mark({ clusterId: 2, addr: '10.102.1.5', port: 8080 }, 'unhealthy');
    await settle();
    expect(backendsOf()).toContain('2:10.102.1.5:8080:quarantined');
    expect(backendsOf()).toContain('2:10.102.1.6:8080:active');
  });

  it('explains the state it programmed, not a health status that came after the pass', async () => {
    rig.remotes.set([peer('west', 2, [clusterService('west', 2, 'echo', ['10.102.1.5'])])]);
    await settle();
    rig.health.statuses.set(targetKey({ addr: '10.102.1.5', port: 8080 }), 'unhealthy'); // no pass yet
    const states = () => rig.controller.services().flatMap((s) => s.frontends.flatMap((f) => f.backends.map((b) => `${b.addr}:${b.state}`)));
    expect(states()).toContain('10.102.1.5:active');
    expect(backendsOf()).toContain('2:10.102.1.5:8080:active');
    rig.health.mark({ clusterId: 2, addr: '10.102.1.5', port: 8080 }, 'unhealthy');
    await settle();
    expect(states()).toContain('10.102.1.5:quarantined');
  });

  it('coalesces a burst of changes into few passes, never two at once', async () => {
    const before = rig.datapath.calls;
    let inFlight = 0;
    let maxInFlight = 0;
    const reconcile = rig.datapath.reconcile;
    rig.datapath.reconcile = (desired) => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      try {
        return reconcile(desired);
      } finally {
        inFlight--;
      }
    };
    for (let i = 0; i < 100; i++) rig.remotes.set([peer('west', 2, [clusterService('west', 2, 'echo', [`10.102.2.${i}`])])]);
    await settle();
    expect(rig.datapath.calls - before).toBeLessThanOrEqual(2);
    expect(maxInFlight).toBe(1);
    expect(backendsOf()).toContain('2:10.102.2.99:8080:active');
  });
});

describe('pod routes', () => {
  const DRAIN_MS = 30_000;
  const west = (link?: Parameters<typeof peer>[3]) => ({
    ...peer('west', 2, [clusterService('west', 2, 'echo', ['10.102.1.5'])], link),
    nodes: [remoteNode('west', 'w1', '10.99.0.3', '10.102.1.0/24')],
  });
  const north = { ...peer('north', 3, []), nodes: [remoteNode('north', 'n1', '10.99.0.4', '10.103.1.0/24')] };

  async function pass(advanceMs = 0): Promise<void> {
    rig.clock.now += advanceMs;
    rig.controller.schedule();
    await settle();
  }

  beforeEach(async () => {
    rig = controllerRig({ ttlMs: 60_000, routeDrainMs: DRAIN_MS });
    rig.local.set([localService('echo', VIP, GLOBAL, ['10.101.1.5'])]);
    rig.remotes.set([west(), north]);
    rig.controller.start();
    await settle();
  });

  it('a removed peer’s backends leave at once, its routes only after the drain period', async () => {
    expect(rig.routes.destinations).toEqual(['10.102.1.0/24', '10.103.1.0/24']);
    rig.remotes.set([north]);
    await settle();
    expect(backendsOf()).toEqual(['0:10.101.1.5:8080:active']);
    expect(rig.routes.destinations).toEqual(['10.102.1.0/24', '10.103.1.0/24']);
    expect(rig.controller.peers()).toContainEqual({ cluster: 'west', kept: false, reason: 'removed from the configuration: backends drained, pod routes stay 30 s more' });
    await pass(DRAIN_MS - 1);
    expect(rig.routes.destinations).toEqual(['10.102.1.0/24', '10.103.1.0/24']);
    await pass(1);
    expect(rig.routes.destinations).toEqual(['10.103.1.0/24']);
    expect(rig.controller.peers().map((p) => p.cluster)).toEqual(['north']);
  });

  it('a peer configured again while draining keeps its routes, from its new view', async () => {
    rig.remotes.set([north]);
    await settle();
    rig.remotes.set([{ ...west(), nodes: [remoteNode('west', 'w2', '10.99.0.5', '10.102.2.0/24')] }, north]);
    await pass(DRAIN_MS);
    expect(rig.routes.destinations).toEqual(['10.102.2.0/24', '10.103.1.0/24']);
    expect(backendsOf()).toContain('2:10.102.1.5:8080:active');
  });

  it('an unreachable peer keeps its routes past the cache TTL that drops its backends', async () => {
    rig.remotes.set([west({ state: 'disconnected', sinceMs: rig.clock.now }), north]);
    await pass(61_000);
    expect(backendsOf()).toEqual(['0:10.101.1.5:8080:active']);
    expect(rig.routes.destinations).toEqual(['10.102.1.0/24', '10.103.1.0/24']);
  });
});

describe('pod routes after a restart', () => {
  const TTL_MS = 60_000;
  const restoredRoutes = [
    { destination: '10.102.1.0/24', via: '10.99.0.3' },
    { destination: '10.102.7.0/24', via: '10.99.0.9' },
  ];
  const westSynced = { ...peer('west', 2, []), nodes: [remoteNode('west', 'w1', '10.99.0.3', '10.102.1.0/24')] };
  const westUnreachable = peer('west', 2, [], { state: 'disconnected', sinceMs: 1_000_000 });

  beforeEach(async () => {
    rig = controllerRig({ ttlMs: TTL_MS, routeDrainMs: 30_000, restoredRoutes });
    rig.local.set([localService('echo', VIP, GLOBAL, ['10.101.1.5'])]);
    rig.remotes.set([westUnreachable]);
    rig.controller.start();
    await settle();
  });

  it('keeps the previous run’s routes while a peer has not delivered its nodes', async () => {
    expect(rig.routes.destinations).toEqual(['10.102.1.0/24', '10.102.7.0/24']);
    rig.clock.now += TTL_MS - 1;
    rig.controller.schedule();
    await settle();
    expect(rig.routes.destinations).toEqual(['10.102.1.0/24', '10.102.7.0/24']);
  });

  it('then routes by what the peer published: a node gone while the agent was down loses its route', async () => {
    rig.remotes.set([westSynced]);
    await settle();
    expect(rig.routes.destinations).toEqual(['10.102.1.0/24']);
    rig.remotes.set([{ ...westSynced, link: { state: 'disconnected', sinceMs: rig.clock.now } }]);
    await settle();
    expect(rig.routes.destinations).toEqual(['10.102.1.0/24']);
  });

  it('drops them one cache TTL after the start when the peer never comes', async () => {
    rig.clock.now += TTL_MS;
    rig.controller.schedule();
    await settle();
    expect(rig.routes.destinations).toEqual([]);
  });
});

describe('before the local view has synced', () => {
  it('writes nothing and is not ready', async () => {
    rig = controllerRig();
    rig.local.isSynced = false;
    rig.controller.start();
    rig.local.set([]);
    await settle();
    expect(rig.datapath.calls).toBe(0);
    expect(rig.controller.ready()).toBe(false);
  });
});

describe('after a restart', () => {
  const restored: DatapathService[] = [
    {
      vip: VIP,
      port: 80,
      proto: 'TCP',
      backends: [
        { addr: '10.101.1.5', port: 8080, state: 'active', clusterId: 0 },
        { addr: '10.102.1.5', port: 8080, state: 'active', clusterId: 2 },
      ],
    },
  ];

  beforeEach(async () => {
    rig = controllerRig({ ttlMs: 60_000, restored });
    rig.local.list = [localService('echo', VIP, GLOBAL, ['10.101.1.5'])];
    rig.controller.start();
    await settle();
  });

  it('keeps the restored backends of a peer that has not synced yet: no writes at all', async () => {
    expect(rig.controller.datapathTotals()).toMatchObject({ reconciles: 1, updates: 0, deletes: 0 });
    rig.remotes.set([peer('west', 2, [clusterService('west', 2, 'echo', ['10.102.1.5'])])]);
    await settle();
    expect(rig.controller.datapathTotals()).toMatchObject({ updates: 0, deletes: 0 });
  });

  it('drops them once the peer synced without them', async () => {
    rig.remotes.set([peer('west', 2, [clusterService('west', 2, 'echo', ['10.102.1.7'])])]);
    await settle();
    expect(backendsOf()).toEqual(['0:10.101.1.5:8080:active', '2:10.102.1.7:8080:active']);
  });

  it('drops them when the peer stays away for a cache TTL after the start', async () => {
    rig.clock.now += 61_000;
    rig.controller.schedule();
    await settle();
    expect(backendsOf()).toEqual(['0:10.101.1.5:8080:active']);
  });
});

describe('while a peer is still in its initial sync', () => {
  const macrotask = () => new Promise((resolve) => setTimeout(resolve, 0));

  it('holds changes back, then merges them all in one pass as soon as the peer has synced', async () => {
    rig = controllerRig();
    rig.local.set([localService('echo', VIP, GLOBAL, ['10.101.1.5'])]);
    rig.controller.start();
    await settle();
    const before = rig.datapath.calls;
    // Connected and listing: status says not synced yet.
    rig.remotes.peers = [peer('west', 2, [clusterService('west', 2, 'echo', ['10.102.1.5'])])];
    rig.local.set([localService('echo', VIP, GLOBAL, ['10.101.1.5', '10.101.1.6'])]);
    await macrotask();
    await macrotask();
    rig.local.set([localService('echo', VIP, GLOBAL, ['10.101.1.6'])]);
    await macrotask();
    expect(rig.datapath.calls).toBe(before);

    rig.remotes.set(rig.remotes.peers); // synced
    await settle();
    expect(rig.datapath.calls).toBe(before + 1);
    expect(backendsOf()).toEqual(['0:10.101.1.6:8080:active', '2:10.102.1.5:8080:active']);
  });
});
