/**
 * Pod routes: the pure plan (overlaps refused with a reason) and the manager in a test network
 * namespace (installs, moves and removes only routes carrying its protocol number).
 */
import { maskFromPrefixLength } from '../../lib/kvstore/codecs.js';
import type { NodeRecord } from '../../lib/kvstore/types.js';
import {
  RouteManager,
  drainRemovedPeers,
  planRoutes,
  withRestoredRoutes,
  type DrainingPeer,
  type PlannedRoute,
  type RouteClusterView,
} from '../../agent/routes.js';
import { TestNetns } from '../harness/netns.js';
import { silentLog } from './fakes.js';

function node(cluster: string, name: string, internalIP: string, v4Cidr: string | null, v6?: [string, string]): NodeRecord {
  const alloc = (cidr: string, family: 4 | 6) => {
    const [ip, len] = cidr.split('/');
    return { IP: ip, Mask: maskFromPrefixLength(Number(len), family) };
  };
  return {
    Name: name,
    Cluster: cluster,
    IPAddresses: [{ Type: 'InternalIP', IP: internalIP }, ...(v6 ? [{ Type: 'InternalIP' as const, IP: v6[0] }] : [])],
    IPv4AllocCIDR: v4Cidr ? alloc(v4Cidr, 4) : null,
    IPv6AllocCIDR: v6 ? alloc(v6[1], 6) : null,
    ClusterID: 2,
  };
}

describe('planRoutes', () => {
  it('routes each remote node’s pod CIDRs via its InternalIP of the same family', () => {
    const plan = planRoutes(
      [{ name: 'west', nodes: [node('west', 'w1', '10.99.0.3', '10.102.1.0/24', ['fd99:99::3', 'fd99:102:0:1::/64'])] }],
      ['10.101.0.0/16'],
    );
    expect(plan.refused).toEqual([]);
    expect(plan.routes.map(({ destination, via }) => [destination, via])).toEqual([
      ['10.102.1.0/24', '10.99.0.3'],
      ['fd99:102:0:1::/64', 'fd99:99::3'],
    ]);
  });

  it('refuses a CIDR overlapping the local pod CIDRs, and both of two overlapping peers', () => {
    const plan = planRoutes(
      [
        { name: 'west', nodes: [node('west', 'w1', '10.99.0.3', '10.101.7.0/24'), node('west', 'w2', '10.99.0.4', '10.102.2.0/24')] },
        { name: 'north', nodes: [node('north', 'n1', '10.99.0.5', '10.102.0.0/16'), node('north', 'n2', '10.99.0.6', '10.103.1.0/24')] },
      ],
      ['10.101.0.0/16'],
    );
    expect(plan.routes.map((r) => r.destination)).toEqual(['10.103.1.0/24']);
    const reasons = Object.fromEntries(plan.refused.map((p) => [`${p.cluster}/${p.node}`, p.reason]));
    expect(reasons['west/w1']).toMatch(/overlaps the local cluster's pod CIDR 10.101.0.0\/16/);
    expect(reasons['west/w2']).toMatch(/overlaps 10.102.0.0\/16 of node n1 in cluster north/);
    expect(reasons['north/n1']).toMatch(/overlaps 10.102.2.0\/24 of node w2 in cluster west/);
  });

  it('refuses routes that would capture unrelated traffic or have no next hop', () => {
    const plan = planRoutes(
      [{ name: 'west', nodes: [node('west', 'w1', '10.99.0.3', '0.0.0.0/1'), node('west', 'w2', '10.102.3.1', '10.102.3.0/24'), { ...node('west', 'w3', '10.99.0.5', '10.102.4.0/24'), IPAddresses: [] }] }],
      [],
    );
    expect(plan.routes).toEqual([]);
    expect(plan.refused.map((p) => p.reason)).toEqual([
      expect.stringMatching(/too broad/),
      expect.stringMatching(/inside the pod CIDR/),
      expect.stringMatching(/no IPv4 InternalIP/),
    ]);
  });
});

describe('drainRemovedPeers', () => {
  const DRAIN = 30_000;
  const NOW = 1_000_000;
  const view = (name: string, cidr: string): RouteClusterView => ({ name, nodes: [node(name, `${name}-1`, '10.99.0.3', cidr)] });
  const west = view('west', '10.102.1.0/24');
  const north = view('north', '10.103.1.0/24');
  const westMoved = view('west', '10.102.9.0/24');
  const draining = (v: RouteClusterView, removedAtMs: number): DrainingPeer => ({ view: v, removedAtMs });

  it.each<[string, { previous: RouteClusterView[]; draining: DrainingPeer[]; configured: RouteClusterView[] }, { routed: string[]; draining: [string, number][]; recheckAtMs?: number }]>([
    ['nothing removed', { previous: [west, north], draining: [], configured: [west, north] }, { routed: ['west', 'north'], draining: [] }],
    ['just removed: still routed, drains from now', { previous: [west, north], draining: [], configured: [north] }, { routed: ['north', 'west'], draining: [['west', NOW]], recheckAtMs: NOW + DRAIN }],
    ['removed a moment ago: still routed', { previous: [north], draining: [draining(west, NOW - DRAIN + 1)], configured: [north] }, { routed: ['north', 'west'], draining: [['west', NOW - DRAIN + 1]], recheckAtMs: NOW + 1 }],
    ['drain period over: gone', { previous: [north], draining: [draining(west, NOW - DRAIN)], configured: [north] }, { routed: ['north'], draining: [] }],
    ['configured again while draining: its current view only', { previous: [north], draining: [draining(west, NOW - 1)], configured: [westMoved, north] }, { routed: ['west', 'north'], draining: [] }],
    ['two removed at different times: the earlier end is the recheck', { previous: [], draining: [draining(west, NOW - 10_000), draining(north, NOW - 20_000)], configured: [] }, { routed: ['west', 'north'], draining: [['west', NOW - 10_000], ['north', NOW - 20_000]], recheckAtMs: NOW + DRAIN - 20_000 }],
    ['a draining peer is not drained again from previous', { previous: [west], draining: [draining(west, NOW - 5_000)], configured: [] }, { routed: ['west'], draining: [['west', NOW - 5_000]], recheckAtMs: NOW + DRAIN - 5_000 }],
    ['every peer removed at once', { previous: [west, north], draining: [], configured: [] }, { routed: ['west', 'north'], draining: [['west', NOW], ['north', NOW]], recheckAtMs: NOW + DRAIN }],
  ])('%s', (_name, input, expected) => {
    const result = drainRemovedPeers({ ...input, drainMs: DRAIN, nowMs: NOW });
    expect(result.views.map((v) => v.name)).toEqual(expected.routed);
    expect(result.draining.map((d) => [d.view.name, d.removedAtMs])).toEqual(expected.draining);
    expect(result.recheckAtMs).toBe(expected.recheckAtMs);
  });

  it('routes a re-added peer by its current nodes, not the drained ones', () => {
    const result = drainRemovedPeers({ previous: [], draining: [draining(west, NOW - 1)], configured: [westMoved], drainMs: DRAIN, nowMs: NOW });
    expect(planRoutes(result.views, []).routes.map((r) => r.destination)).toEqual(['10.102.9.0/24']);
  });
});

describe('withRestoredRoutes', () => {
  const planned: PlannedRoute = { destination: '10.102.1.0/24', via: '10.99.0.3', cluster: 'west', node: 'w1' };
  const route = (destination: string, via = '10.99.0.9'): PlannedRoute => ({ destination, via });
  const refused = [{ cluster: 'west', node: 'w9', destination: '10.101.9.0/24', reason: 'overlaps the local cluster' }];

  it.each<[string, PlannedRoute[], boolean, string[]]>([
    ['not kept: the plan alone', [route('10.102.7.0/24')], false, ['10.102.1.0/24']],
    ['kept: added beside the plan, in order', [route('10.103.1.0/24'), route('10.102.7.0/24')], true, ['10.102.1.0/24', '10.102.7.0/24', '10.103.1.0/24']],
    ['the same destination: the plan’s route (its next hop) wins', [route('10.102.1.0/24', '10.99.0.77')], true, ['10.102.1.0/24 via 10.99.0.3']],
    ['overlapping a planned route: dropped', [route('10.102.0.0/16')], true, ['10.102.1.0/24']],
    ['overlapping the local pod CIDRs: dropped', [route('10.101.9.0/24')], true, ['10.102.1.0/24']],
    ['IPv6 beside IPv4', [route('fd99:102:0:7::/64', 'fd99:99::9')], true, ['10.102.1.0/24', 'fd99:102:0:7::/64']],
  ])('%s', (_name, restored, keep, expected) => {
    const result = withRestoredRoutes({ routes: [planned], refused }, restored, keep, ['10.101.0.0/16']);
    const shown = result.routes.map((r) => (expected.some((e) => e.includes(' via ')) ? `${r.destination} via ${r.via}` : r.destination));
    expect(shown).toEqual(expected);
    expect(result.refused).toEqual(refused);
  });
});

describe('RouteManager in a network namespace', () => {
  let ns: TestNetns;
  let manager: RouteManager;

  beforeAll(() => {
    ns = TestNetns.create('cm-agent-rt');
    ns.ip('link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
    ns.ip('link', 'set', 'v0', 'up');
    ns.ip('link', 'set', 'v1', 'up');
    ns.addAddress('10.200.50.1/24', 'v0');
    manager = new RouteManager({ log: silentLog, netns: ns.name });
  });
  afterAll(async () => {
    await ns?.destroy();
  });

  const routes = () => ns.ip('route', 'show').trim().split('\n').map((l) => l.trim());

  it('installs, moves and removes its routes and leaves a foreign one alone', async () => {
    ns.ip('route', 'add', '10.200.70.0/24', 'via', '10.200.50.9'); // not ours
    const views = (via: string) => [
      { name: 'west', nodes: [node('west', 'w1', via, '10.200.60.0/24'), node('west', 'w2', '10.200.50.3', '10.200.70.0/24')] },
    ];
    const first = await manager.sync(planRoutes(views('10.200.50.2'), []));
    expect(first.installed.map((r) => r.destination)).toEqual(['10.200.60.0/24']);
    expect(first.problems).toEqual([expect.objectContaining({ destination: '10.200.70.0/24', reason: expect.stringMatching(/does not own/) })]);
    expect(routes()).toContain('10.200.60.0/24 via 10.200.50.2 dev v0 proto 203');

    await manager.sync(planRoutes(views('10.200.50.4'), []));
    expect(await manager.owned()).toEqual([{ destination: '10.200.60.0/24', via: '10.200.50.4' }]);

    await manager.sync(planRoutes([], []));
    expect(await manager.owned()).toEqual([]);
    expect(routes()).toContain('10.200.70.0/24 via 10.200.50.9 dev v0');
  });
});
