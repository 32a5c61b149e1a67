import { UserError } from '../../lib/errors.js';
import { parseCidr, cidrsOverlap, cidrContainsIp } from '../../lib/net/cidr.js';
import {
  DEFAULT_LAB_SPEC,
  type LabSpec,
  FORBIDDEN_RANGES,
  labsInTheWay,
  planLab,
  planRanges,
  planPod,
  podAddresses,
} from '../../lab/topology/plan.js';

const THIS_HOST_ROUTES = [
  '192.0.2.0/24',
  '192.0.2.2',
  'fd00::/64',
  'fe80::/64',
  '127.0.0.0/8',
  '::1',
  'ff00::/8',
];

function withCluster(index: number, change: Partial<LabSpec['clusters'][number]>): LabSpec {
  return {
    ...DEFAULT_LAB_SPEC,
    clusters: DEFAULT_LAB_SPEC.clusters.map((c, i) => (i === index ? { ...c, ...change } : c)),
  };
}

function errorOf(make: () => unknown): string {
  try {
    make();
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    return (err as Error).message;
  }
  throw new Error('expected an error');
}

describe('default plan', () => {
  const plan = planLab(DEFAULT_LAB_SPEC, THIS_HOST_ROUTES);

  it('has two clusters of a control plane and two workers, kind-style names, prefixed namespaces', () => {
    expect(plan.nodes.map((n) => n.name)).toEqual([
      'east-control-plane',
      'east-worker',
      'east-worker2',
      'west-control-plane',
      'west-worker',
      'west-worker2',
    ]);
    for (const ns of [plan.bridge.netns, ...plan.nodes.map((n) => n.netns)])
      expect(ns.startsWith('cmlab-')).toBe(true);
  });

  it('gives the host .1 and every node a distinct bridge address in the bridge subnet', () => {
    expect(plan.host).toMatchObject({ device: 'cmlab-host', ipv4: '10.99.0.1', ipv6: 'fd99:0:0:99::1' });
    const bridge4 = parseCidr(plan.bridge.subnetV4);
    const addresses = [plan.host.ipv4, ...plan.nodes.map((n) => n.ipv4)];
    expect(new Set(addresses).size).toBe(addresses.length);
    for (const ip of addresses) expect(cidrContainsIp(bridge4, ip)).toBe(true);
  });

  it('slices each cluster pod CIDR into a /24 and a /64 per node, gateway = first address', () => {
    const east = plan.nodes.filter((n) => n.cluster === 'east');
    expect(east.map((n) => [n.podCIDRv4, n.podCIDRv6, n.podGatewayV4])).toEqual([
      ['10.101.0.0/24', 'fd99:101::/64', '10.101.0.1'],
      ['10.101.1.0/24', 'fd99:101:0:1::/64', '10.101.1.1'],
      ['10.101.2.0/24', 'fd99:101:0:2::/64', '10.101.2.1'],
    ]);
  });

  it('routes pod CIDRs only among nodes of the same cluster, via the peer bridge address', () => {
    for (const node of plan.nodes) {
      const peers = plan.nodes.filter((p) => p.cluster === node.cluster && p !== node);
      expect(node.routes).toEqual(
        peers.flatMap((p) => [
          { destination: p.podCIDRv4, via: p.ipv4, device: 'eth0' },
          { destination: p.podCIDRv6, via: p.ipv6, device: 'eth0' },
        ]),
      );
      const west = parseCidr(plan.clusters.find((c) => c.name !== node.cluster)!.podCIDRv4);
      expect(node.routes.some((r) => cidrsOverlap(parseCidr(r.destination), west))).toBe(false);
    }
  });

  it('blackholes every pod and service range of both families in the root namespace', () => {
    expect(plan.hostBlackholes.map((r) => [r.type, r.destination])).toEqual(
      ['10.101.0.0/16', 'fd99:101::/48', '10.111.0.0/16', 'fd99:111::/108']
        .concat(['10.102.0.0/16', 'fd99:102::/48', '10.112.0.0/16', 'fd99:112::/108'])
        .map((d) => ['blackhole', d]),
    );
  });

  it('gives every node (its pods and its agent) a cgroup under the lab cgroup root', () => {
    expect(plan.nodes.map((n) => n.cgroup)).toEqual([
      'clustermesh-lab-cmlab/east-control-plane',
      'clustermesh-lab-cmlab/east-worker',
      'clustermesh-lab-cmlab/east-worker2',
      'clustermesh-lab-cmlab/west-control-plane',
      'clustermesh-lab-cmlab/west-worker',
      'clustermesh-lab-cmlab/west-worker2',
    ]);
  });

  it('keeps every interface name within 15 characters and unique per namespace', () => {
    const ends = [
      ...plan.veths.flat(),
      { netns: '(root)', name: plan.host.device },
      { netns: plan.bridge.netns, name: plan.host.bridgePort },
    ];
    const byNetns = new Map<string, string[]>();
    for (const end of ends) {
      expect(end.name.length).toBeLessThanOrEqual(15);
      byNetns.set(end.netns, [...(byNetns.get(end.netns) ?? []), end.name]);
    }
    for (const names of byNetns.values()) expect(new Set(names).size).toBe(names.length);
  });
});

describe('spec validation: one line naming the problem', () => {
  const cases: Array<[string, LabSpec, RegExp]> = [
    [
      'pod CIDRs of two clusters overlap',
      withCluster(1, { podCIDRv4: '10.101.128.0/17' }),
      /east pod CIDR 10\.101\.0\.0\/16 overlaps cluster west pod CIDR 10\.101\.128\.0\/17/,
    ],
    [
      'IPv6 service CIDRs overlap',
      withCluster(1, { serviceCIDRv6: 'fd99:111::/112' }),
      /east service CIDR fd99:111::\/108 overlaps cluster west service CIDR fd99:111::\/112/,
    ],
    [
      'pod CIDR overlaps the bridge',
      withCluster(0, { podCIDRv4: '10.99.0.0/16' }),
      /bridge subnet 10\.99\.0\.0\/24 overlaps cluster east pod CIDR/,
    ],
    [
      'uplink IPv4 range',
      withCluster(0, { serviceCIDRv4: '192.0.2.0/25' }),
      /192\.0\.2\.0\/24, which the lab must never use/,
    ],
    [
      'uplink IPv6 range',
      withCluster(0, { podCIDRv6: 'fd00::/48' }),
      /fd00::\/64, which the lab must never use/,
    ],
    [
      'the resolver inside a range',
      withCluster(1, { podCIDRv4: '10.255.0.0/16' }),
      /10\.255\.255\.53\/32, which the lab must never use/,
    ],
    ['host bits set', withCluster(0, { podCIDRv4: '10.101.0.1/16' }), /did you mean 10\.101\.0\.0\/16/],
    [
      'wrong family',
      withCluster(0, { podCIDRv4: 'fd99:101::/48' }),
      /east pod CIDR fd99:101::\/48 must be IPv4/,
    ],
    ['not a CIDR', withCluster(0, { serviceCIDRv4: '10.111.0.0' }), /not a CIDR/],
    [
      'pod CIDR too small for the nodes',
      withCluster(0, { podCIDRv4: '10.101.0.0/23' }),
      /holds 2 node \/24s, 3 nodes need one each/,
    ],
    ['duplicate cluster ID', withCluster(1, { id: 1 }), /two clusters have ID 1/],
    ['duplicate cluster name', withCluster(1, { name: 'east' }), /two clusters are named "east"/],
    ['cluster ID 0', withCluster(0, { id: 0 }), /ID 0: use 1\.\.255/],
    ['cluster ID 256', withCluster(0, { id: 256 }), /ID 256: use 1\.\.255/],
    ['no workers', withCluster(0, { workers: 0 }), /0 workers/],
    ['bad cluster name', withCluster(0, { name: 'East_1' }), /cluster name "East_1"/],
    [
      'prefix too long for interface names',
      { ...DEFAULT_LAB_SPEC, prefix: 'clustermesh' },
      /lab prefix "clustermesh"/,
    ],
    [
      'bridge too small',
      { ...DEFAULT_LAB_SPEC, bridgeSubnetV4: '10.99.0.0/29' },
      /bridge subnet 10\.99\.0\.0\/29 is too small for 6 nodes/,
    ],
  ];

  it.each(cases)('%s', (_name, spec, expected) => {
    const message = errorOf(() => planLab(spec, THIS_HOST_ROUTES));
    expect(message).toMatch(expected);
    expect(message).not.toContain('\n');
  });
});

describe('host overlap', () => {
  const cases: Array<[string, string[], RegExp | undefined]> = [
    ['this machine (uplink, loopback, link-local, multicast)', THIS_HOST_ROUTES, undefined],
    ['a default route is not a clash', ['0.0.0.0/0', '::/0'], undefined],
    [
      'a host route inside a pod CIDR',
      ['10.101.7.0/24'],
      /cluster east pod CIDR 10\.101\.0\.0\/16 overlaps the host's 10\.101\.7\.0\/24/,
    ],
    [
      'a host address inside a service CIDR',
      ['10.112.3.4'],
      /cluster west service CIDR .* overlaps the host's 10\.112\.3\.4/,
    ],
    ['a host supernet covering the bridge', ['10.0.0.0/8'], /overlaps the host's 10\.0\.0\.0\/8/],
    ['an IPv6 host route', ['fd99::/16'], /overlaps the host's fd99::\/16/],
  ];

  it.each(cases)('%s', (_name, hostRoutes, expected) => {
    if (expected === undefined) expect(() => planLab(DEFAULT_LAB_SPEC, hostRoutes)).not.toThrow();
    else expect(errorOf(() => planLab(DEFAULT_LAB_SPEC, hostRoutes))).toMatch(expected);
  });

  it('forbidden ranges are the uplink and the resolver', () => {
    expect(FORBIDDEN_RANGES).toEqual(['192.0.2.0/24', 'fd00::/64', '10.255.255.53/32']);
  });
});

describe('labs in the way of a new lab', () => {
  const ranges = planRanges(planLab(DEFAULT_LAB_SPEC));
  const lab = (prefix: string, spec: Partial<LabSpec>, live: boolean) => ({
    prefix,
    ranges: planRanges(planLab({ ...DEFAULT_LAB_SPEC, ...spec, prefix })),
    live,
  });
  const elsewhere: Partial<LabSpec> = {
    bridgeSubnetV4: '10.210.0.0/24',
    bridgeSubnetV6: 'fd99:210::/64',
    clusters: DEFAULT_LAB_SPEC.clusters.map((c, i) => ({
      ...c,
      podCIDRv4: `10.21${i + 1}.0.0/16`,
      podCIDRv6: `fd99:21${i + 1}::/56`,
      serviceCIDRv4: `10.22${i + 1}.0.0/16`,
      serviceCIDRv6: `fd99:22${i + 1}::/108`,
    })),
  };
  const cases: Array<[string, ReturnType<typeof lab>[], { crashed: string[]; live: string[] }]> = [
    ['no other lab', [], { crashed: [], live: [] }],
    ['a crashed lab on the same ranges: removed', [lab('old', {}, false)], { crashed: ['old'], live: [] }],
    [
      'a running lab on the same ranges: refused, saying which',
      [lab('demo', {}, true)],
      {
        crashed: [],
        live: [
          `bridge subnet ${DEFAULT_LAB_SPEC.bridgeSubnetV4} overlaps lab "demo"'s bridge subnet ${DEFAULT_LAB_SPEC.bridgeSubnetV4}, and that lab runs: bring it down first (clustermesh lab down --prefix demo)`,
        ],
      },
    ],
    ['labs on other ranges, crashed or not: none of its business', [lab('far', elsewhere, false), lab('run', elsewhere, true)], { crashed: [], live: [] }],
    ['one crashed and one running', [lab('old', {}, false), lab('demo', {}, true)], { crashed: ['old'], live: [expect.stringContaining('lab "demo"')] }],
  ];

  it.each(cases)('%s', (_name, others, expected) => {
    expect(labsInTheWay(ranges, others)).toEqual(expected);
  });
});

describe('pods', () => {
  const plan = planLab(DEFAULT_LAB_SPEC);
  const worker = plan.nodes.find((n) => n.name === 'west-worker2')!;

  it('numbers pod addresses after the gateway', () => {
    expect(podAddresses(worker, 1)).toEqual({ ipv4: '10.102.2.2', ipv6: 'fd99:102:0:2::2' });
    expect(podAddresses(worker, 200)).toEqual({ ipv4: '10.102.2.201', ipv6: 'fd99:102:0:2::c9' });
  });

  it('names the pod namespace after lab, node and pod, with a short stable node-side veth', () => {
    const pod = planPod(plan, 'west-worker2', 'echo-1', '10.102.2.2', 'fd99:102:0:2::2');
    expect(pod).toMatchObject({
      netns: 'cmlab-west-worker2-echo-1',
      gatewayV4: '10.102.2.1',
      gatewayV6: 'fe80::1',
    });
    expect(pod.hostDevice).toMatch(/^lxc[0-9a-f]{11}$/);
    expect(planPod(plan, 'west-worker', 'echo-1', '10.102.1.2', 'fd99:102:0:1::2').hostDevice).toBe(
      pod.hostDevice,
    );
  });

  const bad: Array<[string, string, string, string, RegExp]> = [
    [
      'address of another node',
      'west-worker2',
      '10.102.1.2',
      'fd99:102:0:2::2',
      /10\.102\.1\.2 must be a free address inside west-worker2's pod CIDR 10\.102\.2\.0\/24/,
    ],
    ['the gateway', 'west-worker2', '10.102.2.1', 'fd99:102:0:2::2', /10\.102\.2\.1 must be a free address/],
    [
      'IPv6 outside',
      'west-worker2',
      '10.102.2.2',
      'fd99:101:0:2::2',
      /fd99:101:0:2::2 must be a free address/,
    ],
    [
      'unknown node',
      'north-worker',
      '10.102.2.2',
      'fd99:102:0:2::2',
      /no node "north-worker": nodes are east-control-plane/,
    ],
  ];
  it.each(bad)('refuses %s', (_name, node, ipv4, ipv6, expected) => {
    expect(errorOf(() => planPod(plan, node, 'echo-1', ipv4, ipv6))).toMatch(expected);
  });

  it('refuses a pod name that is not a DNS label', () => {
    expect(errorOf(() => planPod(plan, 'west-worker2', 'Echo_1', '10.102.2.2', 'fd99:102:0:2::2'))).toMatch(
      /DNS label/,
    );
  });
});
