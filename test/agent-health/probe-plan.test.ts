/** What the health checker is asked to probe: the pure plan, and the plan the merge makes per policy. */
import { NEXT_PROBES_PER_FRONTEND, planProbes, type HealthStatus, type HealthTarget } from '../../agent/health/index.js';
import { mergeServices, type LocalBackend, type RemoteCluster } from '../../agent/merge/index.js';
import { parseServicePolicy } from '../../lib/k8s/annotations.js';
import type { ClusterService } from '../../lib/kvstore/types.js';

const t = (clusterId: number, addr: string, port = 8080): HealthTarget => ({ clusterId, addr, port });

describe('planProbes', () => {
  type Row = [what: string, frontends: Parameters<typeof planProbes>[0], perFrontend: number, expected: string[]];
  const show = (targets: ReturnType<typeof planProbes>) =>
    targets.map((x) => `${x.clusterId}:${x.addr}:${x.port}${x.standby ? ' standby' : ''}`);
  const rows: Row[] = [
    ['nothing', [], 8, []],
    [
      'used whole, next bounded per frontend, in the order given',
      [{ used: [t(0, 'a'), t(0, 'b')], next: [t(2, 'z'), t(2, 'y'), t(2, 'x')] }],
      2,
      ['0:a:8080', '0:b:8080', '2:y:8080 standby', '2:z:8080 standby'],
    ],
    [
      'one probe per address:port across frontends and clusters; the first claim names it',
      [
        { used: [t(2, 'w')], next: [] },
        { used: [t(3, 'w')], next: [t(3, 'w', 9090)] },
      ],
      8,
      ['2:w:8080', '3:w:9090 standby'],
    ],
    [
      'used by one frontend, next for another: in use, and it does not count against the bound',
      [
        { used: [t(2, 'w')], next: [] },
        { used: [t(0, 'a')], next: [t(2, 'w'), t(2, 'v')] },
      ],
      1,
      ['0:a:8080', '2:v:8080 standby', '2:w:8080'],
    ],
    [
      'each frontend has its own bound',
      [
        { used: [], next: [t(2, 'p'), t(2, 'q')] },
        { used: [], next: [t(2, 'r'), t(2, 's')] },
      ],
      1,
      ['2:p:8080 standby', '2:r:8080 standby'],
    ],
  ];
  it.each(rows)('%s', (_what, frontends, perFrontend, expected) => {
    expect(show(planProbes(frontends, perFrontend))).toEqual(expected);
  });

  it('defaults to NEXT_PROBES_PER_FRONTEND next-in-line targets per frontend', () => {
    const next = Array.from({ length: 3 * NEXT_PROBES_PER_FRONTEND }, (_, i) => t(2, `10.102.0.${i}`));
    expect(planProbes([{ used: [], next }]).length).toBe(NEXT_PROBES_PER_FRONTEND);
  });
});

describe('what the merge asks to probe, per policy', () => {
  const L1 = '10.101.1.5';
  const L2 = '10.101.1.6';
  const W1 = '10.102.1.5';
  const W2 = '10.102.1.6';
  const N1 = '10.103.1.5';
  const S1 = '10.104.1.5';
  const IDS: Record<string, number> = { west: 2, north: 3, south: 4 };

  const ready = (addr: string): LocalBackend => ({ addr, ports: { http: 8080 }, ready: true, serving: true, terminating: false });
  const terminating = (addr: string): LocalBackend => ({ ...ready(addr), ready: false, terminating: true });
  const peer = (cluster: string, addrs: string[]): ClusterService => ({
    cluster,
    namespace: 'default',
    name: 'echo',
    frontends: {},
    backends: Object.fromEntries(addrs.map((a) => [a, { http: { Protocol: 'TCP' as const, Port: 8080 } }])),
    labels: {},
    selector: {},
    includeExternal: true,
    shared: true,
    clusterID: IDS[cluster],
  });

  interface Case {
    annotations: Record<string, string>;
    local: LocalBackend[];
    peers: Record<string, string[]>;
    health?: Record<string, HealthStatus>;
  }
  /** The probe plan as "addr" (in use) / "addr standby", sorted as the plan is. */
  function probed({ annotations, local, peers, health = {} }: Case): string[] {
    const remote = new Map<string, RemoteCluster>(
      Object.entries(peers).map(([cluster, addrs]) => [cluster, { id: IDS[cluster], services: [peer(cluster, addrs)] }]),
    );
    const merged = mergeServices({
      localCluster: { name: 'east', id: 1 },
      localServices: [
        {
          namespace: 'default',
          name: 'echo',
          clusterIPs: ['10.111.0.10'],
          ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
          policy: parseServicePolicy({ 'clustermesh.io/global': 'true', ...annotations }),
          localBackends: local,
        },
      ],
      remote,
      health: (_id, addr) => health[addr] ?? 'unknown',
      explain: false,
    });
    return merged.probeTargets.map((x) => `${x.addr}${x.standby ? ' standby' : ''}`);
  }

  const affinity = (a: string, preference?: string) => ({
    'clustermesh.io/affinity': a,
    ...(preference ? { 'clustermesh.io/cluster-preference': preference } : {}),
  });
  const both = { west: [W1, W2], north: [N1] };

  type Row = [what: string, c: Case, expected: string[]];
  const rows: Row[] = [
    [
      'affinity local, healthy local: the remotes stand by, all of them (no preference: one group)',
      { annotations: affinity('local'), local: [ready(L1)], peers: both },
      [L1, `${W1} standby`, `${W2} standby`, `${N1} standby`],
    ],
    [
      'affinity local with a preference: only the first preferred cluster stands by',
      { annotations: affinity('local', 'north,west'), local: [ready(L1)], peers: both },
      [L1, `${N1} standby`],
    ],
    [
      'affinity local, the preferred cluster all unhealthy: it stays probed, the next one joins',
      { annotations: affinity('local', 'north,west'), local: [ready(L1)], peers: both, health: { [N1]: 'unhealthy' } },
      [L1, `${W1} standby`, `${W2} standby`, `${N1} standby`],
    ],
    [
      'affinity local, local quarantined: local and the preferred cluster in use, the next cluster stands by',
      {
        annotations: affinity('local', 'west,north'),
        local: [ready(L1)],
        peers: { ...both, south: [S1] },
        health: { [L1]: 'unhealthy' },
      },
      [L1, W1, W2, `${N1} standby`],
    ],
    [
      'affinity none: every backend in use, nothing next',
      { annotations: affinity('none'), local: [ready(L1)], peers: both },
      [L1, W1, W2, N1],
    ],
    [
      'affinity remote: the remotes in use, local stands by',
      { annotations: affinity('remote'), local: [ready(L1), ready(L2)], peers: { north: [N1] } },
      [`${L1} standby`, `${L2} standby`, N1],
    ],
    [
      'affinity remote with a preference: the next preferred cluster stands by, not local',
      { annotations: affinity('remote', 'west,north'), local: [ready(L1)], peers: both },
      [W1, W2, `${N1} standby`],
    ],
    [
      'a terminating local backend is not probed',
      { annotations: affinity('local'), local: [ready(L1), terminating(L2)], peers: {} },
      [L1],
    ],
    [
      'a remote cluster neither used nor next is not probed at all',
      { annotations: affinity('local', 'west,north'), local: [ready(L1)], peers: { ...both, south: [S1] } },
      [L1, `${W1} standby`, `${W2} standby`],
    ],
  ];
  it.each(rows)('%s', (_what, c, expected) => {
    expect(probed(c)).toEqual(expected);
  });

  it('bounds the standby targets of a frontend', () => {
    const many = Array.from({ length: 50 }, (_, i) => `10.102.2.${i + 1}`);
    const plan = probed({ annotations: affinity('local'), local: [ready(L1)], peers: { west: many } });
    expect(plan.filter((p) => p.endsWith('standby')).length).toBe(NEXT_PROBES_PER_FRONTEND);
    expect(plan).toContain(L1);
  });
});
