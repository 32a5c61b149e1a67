import {
  CLUSTERS,
  addressPlanRange,
  cidrsOverlap,
  ipv4Range,
  readYaml,
  valuesFileOf,
  type ClusterName,
} from './chart-fixtures.js';

interface KindConfig {
  kind: string;
  apiVersion: string;
  name: string;
  networking: { disableDefaultCNI: boolean; podSubnet: string; serviceSubnet: string };
  nodes: {
    role: string;
    extraPortMappings?: { containerPort: number; hostPort: number; listenAddress?: string }[];
  }[];
}

const configs = new Map<ClusterName, KindConfig>(
  CLUSTERS.map((cluster) => [cluster, readYaml<KindConfig>(`kind-configs/${cluster}.yaml`)]),
);

function rangesOf(config: KindConfig): string[] {
  return [config.networking.podSubnet, config.networking.serviceSubnet];
}

describe('cidrsOverlap (the helper the checks rely on)', () => {
  it.each([
    ['10.101.0.0/16', '10.102.0.0/16', false],
    ['10.101.0.0/16', '10.101.200.0/24', true],
    ['10.0.0.0/8', '10.255.255.53/32', true],
    ['10.111.0.0/16', '10.112.0.0/16', false],
    ['10.101.5.7/16', '10.101.0.0/24', true],
  ])('%s vs %s → %s', (a, b, overlap) => {
    expect(cidrsOverlap(a, b)).toBe(overlap);
    expect(cidrsOverlap(b, a)).toBe(overlap);
  });

  it('refuses what is not an IPv4 CIDR', () => {
    expect(() => ipv4Range('10.1.300.0/24')).toThrow('not an IPv4 address');
    expect(() => ipv4Range('10.1.0.0/33')).toThrow('no valid prefix length');
  });
});

describe('kind-configs', () => {
  it.each(CLUSTERS)(
    '%s is a kind Cluster of one control-plane and two workers, keeping kindnet',
    (cluster) => {
      const config = configs.get(cluster)!;
      expect([config.kind, config.apiVersion, config.name]).toEqual([
        'Cluster',
        'kind.x-k8s.io/v1alpha4',
        cluster,
      ]);
      expect(config.nodes.map((n) => n.role)).toEqual(['control-plane', 'worker', 'worker']);
      expect(config.networking.disableDefaultCNI).toBe(false);
    },
  );

  it.each(CLUSTERS)("%s uses ARCHITECTURE.md's address plan", (cluster) => {
    const { networking } = configs.get(cluster)!;
    expect(networking.podSubnet).toBe(addressPlanRange(`${cluster} pod CIDR`));
    expect(networking.serviceSubnet).toBe(addressPlanRange(`${cluster} service CIDR`));
  });

  it('has pairwise disjoint pod and service CIDRs across both clusters', () => {
    const ranges = [...configs.values()].flatMap(rangesOf);
    expect(ranges).toHaveLength(4);
    for (const [i, a] of ranges.entries()) {
      for (const b of ranges.slice(i + 1)) expect([a, b, cidrsOverlap(a, b)]).toEqual([a, b, false]);
    }
  });

  it('keeps clear of the host uplink and its resolver', () => {
    for (const range of [...configs.values()].flatMap(rangesOf)) {
      for (const forbidden of ['192.0.2.0/24', '10.255.255.53/32']) {
        expect([range, forbidden, cidrsOverlap(range, forbidden)]).toEqual([range, forbidden, false]);
      }
    }
  });

  it('publishes each cluster its own etcd NodePort, the one its chart values give, on loopback', () => {
    const ports = CLUSTERS.map((cluster) => {
      const mappings = configs.get(cluster)!.nodes.flatMap((n) => n.extraPortMappings ?? []);
      const values = readYaml<{ apiserver: { service: { nodePort: number } } }>(valuesFileOf(cluster));
      expect(mappings).toEqual([
        expect.objectContaining({
          containerPort: values.apiserver.service.nodePort,
          hostPort: values.apiserver.service.nodePort,
          listenAddress: '127.0.0.1',
        }),
      ]);
      return values.apiserver.service.nodePort;
    });
    expect(new Set(ports).size).toBe(CLUSTERS.length);
  });
});
