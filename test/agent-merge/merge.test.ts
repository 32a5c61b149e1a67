import { mergeServices } from '../../agent/merge/index.js';
import type {
  LocalBackend,
  LocalService,
  MergeInput,
  RemoteCluster,
  ServicePort,
} from '../../agent/merge/index.js';
import type { HealthStatus } from '../../agent/health/index.js';
import { parseServicePolicy } from '../../lib/k8s/annotations.js';
import type { ClusterService, PortMap } from '../../lib/kvstore/types.js';

const VIP4 = '10.111.0.10';
const VIP6 = 'fd99:111::10';
const HTTP: ServicePort = { name: 'http', port: 80, protocol: 'TCP' };
const L1 = '10.101.1.5';
const L2 = '10.101.1.6';
const W1 = '10.102.1.5';
const W2 = '10.102.1.6';
const N1 = '10.103.1.5';
const CLUSTER_IDS: Record<string, number> = { west: 2, north: 3 };

function ready(addr: string, ports: Record<string, number> = { http: 8080 }): LocalBackend {
  return { addr, ports, ready: true, serving: true, terminating: false };
}

function localService(
  annotations: Record<string, string>,
  localBackends: LocalBackend[],
  extra: Partial<LocalService> = {},
): LocalService {
  return {
    namespace: 'default',
    name: 'echo',
    clusterIPs: [VIP4],
    ports: [HTTP],
    policy: parseServicePolicy(annotations),
    localBackends,
    ...extra,
  };
}

function clusterService(
  cluster: string,
  backends: Record<string, PortMap>,
  extra: Partial<ClusterService> = {},
): ClusterService {
  return {
    cluster,
    namespace: 'default',
    name: 'echo',
    frontends: { '10.112.0.10': { http: { Protocol: 'TCP', Port: 80 } } },
    backends,
    labels: {},
    selector: { app: 'echo' },
    includeExternal: true,
    shared: true,
    clusterID: CLUSTER_IDS[cluster],
    ...extra,
  };
}

const httpBackend = (port = 8080): PortMap => ({ http: { Protocol: 'TCP', Port: port } });

function remotes(...services: ClusterService[]): Map<string, RemoteCluster> {
  return new Map(services.map((s) => [s.cluster, { id: CLUSTER_IDS[s.cluster], services: [s] }]));
}

/** Health verdicts by address; everything else is unknown (not probed yet). */
function healthOf(verdicts: Record<string, HealthStatus> = {}) {
  return (_clusterId: number, addr: string) => verdicts[addr] ?? 'unknown';
}

function input(
  local: LocalService[],
  remote: Map<string, RemoteCluster>,
  verdicts?: Record<string, HealthStatus>,
): MergeInput {
  return { localCluster: { name: 'east', id: 1 }, localServices: local, remote, health: healthOf(verdicts) };
}

/** The programmed backends of the one frontend, as `<clusterId>:<addr>:<port>:<state>`. */
function backendsOf(merged: ReturnType<typeof mergeServices>, vip = VIP4, port = 80): string[] {
  const svc = merged.desired.find((s) => s.vip === vip && s.port === port);
  if (!svc) throw new Error(`no desired service ${vip}:${port}`);
  return svc.backends.map((b) => `${b.clusterId}:${b.addr}:${b.port}:${b.state}`);
}

const GLOBAL = { 'clustermesh.io/global': 'true' };
const withAffinity = (affinity: string) => ({ ...GLOBAL, 'clustermesh.io/affinity': affinity });

describe('affinity truth table (Cilium) × local healthy/unhealthy/none × remote present/absent', () => {
  const local = [ready(L1)];
  const L = `0:${L1}:8080:active`;
  const R = `2:${W1}:8080:active`;
  const Lq = `0:${L1}:8080:quarantined`;
  const Rq = `2:${W1}:8080:quarantined`;
  type Row = [
    affinity: string,
    localState: 'healthy' | 'unhealthy' | 'none',
    remotePresent: boolean,
    expected: string[],
  ];
  const rows: Row[] = [
    ['none', 'healthy', true, [L, R]],
    ['none', 'healthy', false, [L]],
    ['none', 'unhealthy', true, [Lq, R]],
    ['none', 'none', true, [R]],
    ['none', 'none', false, []],
    ['local', 'healthy', true, [L]],
    ['local', 'healthy', false, [L]],
    ['local', 'unhealthy', true, [Lq, R]],
    ['local', 'none', true, [R]],
    ['local', 'none', false, []],
    ['remote', 'healthy', true, [R]],
    ['remote', 'healthy', false, [L]],
    ['remote', 'unhealthy', true, [R]],
    ['remote', 'none', true, [R]],
    ['remote', 'none', false, []],
  ];
  it.each(rows)(
    'affinity %s, local %s, remote present %s',
    (affinity, localState, remotePresent, expected) => {
      const merged = mergeServices(
        input(
          [localService(withAffinity(affinity), localState === 'none' ? [] : local)],
          remotePresent ? remotes(clusterService('west', { [W1]: httpBackend() })) : new Map(),
          localState === 'unhealthy' ? { [L1]: 'unhealthy' } : {},
        ),
      );
      expect(backendsOf(merged)).toEqual(expected);
    },
  );

  it('affinity remote with every remote backend unhealthy falls back to local', () => {
    const merged = mergeServices(
      input(
        [localService(withAffinity('remote'), local)],
        remotes(clusterService('west', { [W1]: httpBackend() })),
        {
          [W1]: 'unhealthy',
        },
      ),
    );
    expect(backendsOf(merged)).toEqual([L, Rq]);
    expect(merged.explanations[0].frontends[0].decision).toMatch(
      /affinity remote: no healthy remote, local used/,
    );
  });

  it('affinity local keeps healthy remote backends on standby, probed as next in line', () => {
    const merged = mergeServices(
      input(
        [localService(withAffinity('local'), local)],
        remotes(clusterService('west', { [W1]: httpBackend() })),
      ),
    );
    const standby = merged.explanations[0].frontends[0].backends.find((b) => b.addr === W1);
    expect(standby).toMatchObject({
      state: 'standby',
      reason: expect.stringMatching(/healthy local ≥ min-healthy-local 1/),
    });
    expect(merged.probeTargets).toEqual([
      { clusterId: 0, addr: L1, port: 8080 },
      { clusterId: 2, addr: W1, port: 8080, standby: true },
    ]);
  });
});

describe('who may contribute backends', () => {
  const westBackends = { [W1]: httpBackend() };

  it('a remote service with shared=false contributes nothing', () => {
    const merged = mergeServices(
      input(
        [localService(GLOBAL, [ready(L1)])],
        remotes(clusterService('west', westBackends, { shared: false })),
      ),
    );
    expect(backendsOf(merged)).toEqual([`0:${L1}:8080:active`]);
    expect(merged.explanations[0].remotes).toEqual([
      { cluster: 'west', used: false, reason: 'not shared by that cluster (shared: false)' },
    ]);
    expect(merged.probeTargets.map((t) => t.addr)).toEqual([L1]);
  });

  it('a remote service that is not global in its cluster contributes nothing', () => {
    const merged = mergeServices(
      input(
        [localService(GLOBAL, [])],
        remotes(clusterService('west', westBackends, { includeExternal: false, shared: false })),
      ),
    );
    expect(backendsOf(merged)).toEqual([]);
    expect(merged.explanations[0].remotes[0]).toMatchObject({
      used: false,
      reason: 'not global in that cluster',
    });
  });

  it('a local shared=false service still consumes remote backends', () => {
    const merged = mergeServices(
      input(
        [localService({ ...GLOBAL, 'clustermesh.io/shared': 'false' }, [])],
        remotes(clusterService('west', westBackends)),
      ),
    );
    expect(backendsOf(merged)).toEqual([`2:${W1}:8080:active`]);
  });

  it('a non-global local service is not in the desired state, even when a peer publishes it', () => {
    const merged = mergeServices(
      input([localService({}, [ready(L1)])], remotes(clusterService('west', westBackends))),
    );
    expect(merged.desired).toEqual([]);
    expect(merged.probeTargets).toEqual([]);
    expect(merged.explanations).toEqual([
      expect.objectContaining({
        service: 'default/echo',
        programmed: false,
        reason: expect.stringMatching(/^not global/),
      }),
    ]);
  });

  it('a local service with a malformed annotation is not programmed, and the error is explained', () => {
    const merged = mergeServices(
      input(
        [localService({ 'clustermesh.io/global': 'yes' }, [ready(L1)])],
        remotes(clusterService('west', westBackends)),
      ),
    );
    expect(merged.desired).toEqual([]);
    expect(merged.explanations[0].reason).toMatch(
      /annotation error, treated as not global: annotation clustermesh\.io\/global: "yes"/,
    );
  });

  it('a remote service of another namespace or name does not join', () => {
    const merged = mergeServices(
      input(
        [localService(GLOBAL, [])],
        remotes(
          clusterService('west', westBackends, { namespace: 'other' }),
          clusterService('north', { [N1]: httpBackend() }, { name: 'echo2' }),
        ),
      ),
    );
    expect(backendsOf(merged)).toEqual([]);
  });

  it('a remote that claims the local cluster name is ignored', () => {
    const merged = mergeServices(
      input(
        [localService(GLOBAL, [])],
        new Map([
          ['east', { id: 9, services: [{ ...clusterService('west', westBackends), cluster: 'east' }] }],
        ]),
      ),
    );
    expect(backendsOf(merged)).toEqual([]);
    expect(merged.explanations[0].remotes[0]).toMatchObject({ cluster: 'east', used: false });
  });
});

describe('min-healthy-local', () => {
  const annotations = { ...withAffinity('local'), 'clustermesh.io/min-healthy-local': '2' };
  const remote = remotes(clusterService('west', { [W1]: httpBackend() }));

  it('adds remote backends while fewer than N local backends are healthy', () => {
    const merged = mergeServices(
      input([localService(annotations, [ready(L1), ready(L2)])], remote, { [L2]: 'unhealthy' }),
    );
    expect(backendsOf(merged)).toEqual([
      `0:${L1}:8080:active`,
      `0:${L2}:8080:quarantined`,
      `2:${W1}:8080:active`,
    ]);
    expect(merged.explanations[0].frontends[0].decision).toMatch(
      /1 healthy local < min-healthy-local 2, remote added/,
    );
  });

  it('uses local backends only once N are healthy', () => {
    const merged = mergeServices(
      input([localService(annotations, [ready(L1), ready(L2)])], remote, { [L1]: 'healthy' }),
    );
    expect(backendsOf(merged)).toEqual([`0:${L1}:8080:active`, `0:${L2}:8080:active`]);
  });

  it('counts a not-ready local endpoint as not healthy', () => {
    const notReady = { ...ready(L2), ready: false, serving: false };
    const merged = mergeServices(input([localService(annotations, [ready(L1), notReady])], remote));
    expect(backendsOf(merged)).toEqual([`0:${L1}:8080:active`, `2:${W1}:8080:active`]);
  });
});

describe('cluster preference among remotes', () => {
  const mesh = () =>
    remotes(
      clusterService('west', { [W1]: httpBackend(), [W2]: httpBackend() }),
      clusterService('north', { [N1]: httpBackend() }),
    );
  const prefer = (list: string, affinity = 'local') => ({
    ...withAffinity(affinity),
    'clustermesh.io/cluster-preference': list,
  });

  it('the first listed cluster with a healthy backend wins', () => {
    const merged = mergeServices(input([localService(prefer('north,west'), [])], mesh()));
    expect(backendsOf(merged)).toEqual([`3:${N1}:8080:active`]);
  });

  it('moves to the next listed cluster when the first has no healthy backend', () => {
    const merged = mergeServices(
      input([localService(prefer('north,west'), [])], mesh(), { [N1]: 'unhealthy' }),
    );
    expect(backendsOf(merged)).toEqual([`2:${W1}:8080:active`, `2:${W2}:8080:active`]);
  });

  it('unlisted clusters come last, all together', () => {
    const merged = mergeServices(input([localService(prefer('south'), [])], mesh()));
    expect(backendsOf(merged)).toEqual([`2:${W1}:8080:active`, `2:${W2}:8080:active`, `3:${N1}:8080:active`]);
    expect(merged.explanations[0].frontends[0].decision).toMatch(/unlisted clusters/);
  });

  it('the local cluster in the list is skipped, so one manifest serves every cluster', () => {
    const merged = mergeServices(
      input([localService(prefer('east,west,north'), [ready(L1)])], mesh(), { [L1]: 'unhealthy' }),
    );
    expect(backendsOf(merged)).toEqual([
      `0:${L1}:8080:quarantined`,
      `2:${W1}:8080:active`,
      `2:${W2}:8080:active`,
    ]);
  });

  it('orders remotes under affinity none as well: local plus the preferred remote', () => {
    const merged = mergeServices(input([localService(prefer('north', 'none'), [ready(L1)])], mesh()));
    expect(backendsOf(merged)).toEqual([`0:${L1}:8080:active`, `3:${N1}:8080:active`]);
  });

  it('does not bring remotes in while local affinity is satisfied', () => {
    const merged = mergeServices(input([localService(prefer('north'), [ready(L1)])], mesh()));
    expect(backendsOf(merged)).toEqual([`0:${L1}:8080:active`]);
  });
});

describe('ports and address families', () => {
  it('matches remote backends by port name and uses each side’s own target port', () => {
    const ports: ServicePort[] = [HTTP, { name: 'metrics', port: 9090, protocol: 'TCP' }];
    const remote = remotes(
      clusterService('west', {
        [W1]: {
          http: { Protocol: 'TCP', Port: 8081 },
          metrics: { Protocol: 'TCP', Port: 9100 },
          admin: { Protocol: 'TCP', Port: 7000 },
        },
        [W2]: { web: { Protocol: 'TCP', Port: 80 } },
      }),
    );
    const merged = mergeServices(
      input([localService(GLOBAL, [ready(L1, { http: 8080, metrics: 9000 })], { ports })], remote),
    );
    expect(backendsOf(merged, VIP4, 80)).toEqual([`0:${L1}:8080:active`, `2:${W1}:8081:active`]);
    expect(backendsOf(merged, VIP4, 9090)).toEqual([`0:${L1}:9000:active`, `2:${W1}:9100:active`]);
    expect(merged.desired).toHaveLength(2);
  });

  it('skips a remote port of the same name with another protocol, and says why', () => {
    const dns: ServicePort = { name: 'dns', port: 53, protocol: 'UDP' };
    const remote = remotes(clusterService('west', { [W1]: { dns: { Protocol: 'TCP', Port: 53 } } }));
    const merged = mergeServices(input([localService(GLOBAL, [], { ports: [dns] })], remote));
    expect(merged.desired).toEqual([{ vip: VIP4, port: 53, proto: 'UDP', backends: [] }]);
    expect(merged.explanations[0].frontends[0].backends).toEqual([
      expect.objectContaining({ addr: W1, state: 'skipped', reason: 'protocol TCP ≠ UDP' }),
    ]);
  });

  it('puts each family’s backends on the VIP of that family (dual stack)', () => {
    const W6 = 'fd99:102::1:5';
    const L6 = 'fd99:101::1:5';
    const remote = remotes(clusterService('west', { [W1]: httpBackend(), [W6]: httpBackend() }));
    const merged = mergeServices(
      input([localService(GLOBAL, [ready(L1), ready(L6)], { clusterIPs: [VIP4, VIP6] })], remote),
    );
    expect(backendsOf(merged, VIP4)).toEqual([`0:${L1}:8080:active`, `2:${W1}:8080:active`]);
    expect(backendsOf(merged, VIP6)).toEqual([`0:${L6}:8080:active`, `2:${W6}:8080:active`]);
  });

  it('skips a v6 remote backend for a v4-only service, and says why', () => {
    const remote = remotes(clusterService('west', { 'fd99:102::1:5': httpBackend() }));
    const merged = mergeServices(input([localService(GLOBAL, [])], remote));
    expect(backendsOf(merged)).toEqual([]);
    expect(merged.explanations[0].frontends[0].backends[0]).toMatchObject({
      state: 'skipped',
      reason: expect.stringMatching(/family/),
    });
  });

  it('ignores a headless service (no ClusterIP)', () => {
    const merged = mergeServices(
      input([localService(GLOBAL, [ready(L1)], { clusterIPs: ['None'] })], new Map()),
    );
    expect(merged.desired).toEqual([]);
    expect(merged.explanations[0]).toMatchObject({
      programmed: false,
      reason: expect.stringMatching(/headless/),
    });
  });
});

describe('backend states', () => {
  it('local terminating-but-serving → terminating; not serving → left out; unhealthy → quarantined', () => {
    const terminating = { ...ready(L2), ready: false, serving: true, terminating: true };
    const gone = { ...ready('10.101.1.7'), ready: false, serving: false, terminating: true };
    const merged = mergeServices(
      input(
        [localService(GLOBAL, [ready(L1), terminating, gone])],
        remotes(clusterService('west', { [W1]: httpBackend(), [W2]: httpBackend() })),
        {
          [W2]: 'unhealthy',
        },
      ),
    );
    expect(backendsOf(merged)).toEqual([
      `0:${L1}:8080:active`,
      `0:${L2}:8080:terminating`,
      `2:${W1}:8080:active`,
      `2:${W2}:8080:quarantined`,
    ]);
    expect(merged.probeTargets.map((t) => t.addr)).toEqual([L1, W1, W2]);
  });

  it('fails open when every chosen backend fails its health check', () => {
    const merged = mergeServices(
      input([localService(withAffinity('local'), [ready(L1), ready(L2)])], new Map(), {
        [L1]: 'unhealthy',
        [L2]: 'unhealthy',
      }),
    );
    expect(backendsOf(merged)).toEqual([`0:${L1}:8080:active`, `0:${L2}:8080:active`]);
    expect(merged.explanations[0].frontends[0].decision).toMatch(/fail open/);
  });

  it('reports a backend address claimed twice and keeps the first (local) one', () => {
    const merged = mergeServices(
      input([localService(GLOBAL, [ready(L1)])], remotes(clusterService('west', { [L1]: httpBackend() }))),
    );
    expect(backendsOf(merged)).toEqual([`0:${L1}:8080:active`]);
    expect(merged.explanations[0].frontends[0].backends).toContainEqual(
      expect.objectContaining({
        cluster: 'west',
        state: 'skipped',
        reason: 'duplicate of a backend of cluster east',
      }),
    );
  });
});

it('is deterministic: the order of the inputs does not change the output', () => {
  const services = [
    localService(GLOBAL, [ready(L2), ready(L1)]),
    localService(GLOBAL, [ready('10.101.2.9')], { name: 'api', clusterIPs: ['10.111.0.20'] }),
  ];
  const west = clusterService('west', { [W2]: httpBackend(), [W1]: httpBackend() });
  const north = clusterService('north', { [N1]: httpBackend() });
  const a = mergeServices(input(services, remotes(west, north)));
  const b = mergeServices(input([...services].reverse(), remotes(north, west)));
  expect(b).toEqual(a);
  expect(a.desired.map((s) => s.vip)).toEqual([VIP4, '10.111.0.20'].sort());
});

it('without explanations merges the same desired state, probe list and programmed count', () => {
  const services = [
    localService(GLOBAL, [ready(L1)]),
    localService({}, [ready('10.101.2.9')], { name: 'plain', clusterIPs: ['10.111.0.20'] }),
  ];
  const west = clusterService('west', { [W1]: httpBackend(), [W2]: httpBackend() });
  const explained = mergeServices(input(services, remotes(west), { [W2]: 'unhealthy' }));
  const lean = mergeServices({ ...input(services, remotes(west), { [W2]: 'unhealthy' }), explain: false });
  expect(lean.explanations).toEqual([]);
  expect(lean.desired).toEqual(explained.desired);
  expect(lean.probeTargets).toEqual(explained.probeTargets);
  expect(explained.programmed).toBe(explained.explanations.filter((e) => e.programmed).length);
  expect(lean.programmed).toBe(1);
});
