/**
 * Address ownership at import (lib/kvstore/ownership.ts): tables of what a peer publishes against
 * the local cluster (east, the lab's address plan) and a second peer (north), with the reason each
 * refused address is counted under.
 */
import { maskFromPrefixLength } from '../../lib/kvstore/codecs.js';
import {
  admitPeerRecords,
  type Admission,
  type LocalAddresses,
  type OwnershipReason,
  type PeerRecords,
} from '../../lib/kvstore/ownership.js';
import type { ClusterService, IPCacheEntry, NodeRecord } from '../../lib/kvstore/types.js';

/** east: its Nodes' pod CIDRs and the cluster-wide ranges (--pod-cidrs) */
const LOCAL: LocalAddresses = {
  podCidrs: ['10.101.1.0/24', '10.101.2.0/24', 'fd99:101:0:1::/64', '10.101.0.0/16', 'fd99:101::/48'],
  serviceCidrs: ['10.111.0.0/16', 'fd99:111::/108'],
  clusterIPs: ['10.111.0.20', 'fd99:111::20'],
  nodeIPs: ['10.99.0.11', 'fd99:0:0:99::11'],
};

function cidr(text: string | null): { IP: string; Mask: string } | null {
  if (text === null) return null;
  const [ip, length] = text.split('/');
  return { IP: ip, Mask: maskFromPrefixLength(Number(length), ip.includes(':') ? 6 : 4) };
}

function node(cluster: string, name: string, ips: string[], v4: string | null, v6: string | null = null): NodeRecord {
  return {
    Name: name,
    Cluster: cluster,
    IPAddresses: ips.map((IP) => ({ Type: 'InternalIP', IP })),
    IPv4AllocCIDR: cidr(v4),
    IPv6AllocCIDR: cidr(v6),
    ClusterID: cluster === 'west' ? 2 : 3,
  };
}

function service(cluster: string, name: string, backends: string[]): ClusterService {
  return {
    cluster,
    namespace: 'default',
    name,
    frontends: {},
    backends: Object.fromEntries(backends.map((b) => [b, { http: { Protocol: 'TCP' as const, Port: 8080 } }])),
    labels: {},
    selector: {},
    includeExternal: false,
    shared: true,
    clusterID: cluster === 'west' ? 2 : 3,
  };
}

function ipcache(prefix: string, hostIP = '10.99.0.21'): IPCacheEntry {
  const [IP, length] = prefix.split('/');
  return {
    IP,
    Mask: length === undefined ? null : maskFromPrefixLength(Number(length), IP.includes(':') ? 6 : 4),
    HostIP: hostIP,
    ID: 0x20001,
    K8sNamespace: 'default',
    K8sPodName: 'p',
    NamedPorts: null,
  };
}

const WEST_WORKER = node('west', 'west-worker', ['10.99.0.21', 'fd99:0:0:99::21'], '10.102.1.0/24', 'fd99:102:0:1::/64');
const NORTH_WORKER = node('north', 'north-worker', ['10.99.0.31'], '10.103.1.0/24');

const peer = (name: string, records: Partial<PeerRecords> = {}): PeerRecords => ({
  name,
  nodes: [],
  services: [],
  ipcache: [],
  ...records,
});

/** west with its worker and one service holding `backends`, north with its worker. */
function admitBackends(backends: string[], previous?: Admission) {
  return admitPeerRecords(
    LOCAL,
    [peer('west', { nodes: [WEST_WORKER], services: [service('west', 'echo', backends)] }), peer('north', { nodes: [NORTH_WORKER] })],
    previous,
  );
}

describe('service backends', () => {
  const table: [string, string, OwnershipReason | null][] = [
    ['a pod of the peer (inside its node pod CIDR)', '10.102.1.5', null],
    ['the peer node IP (host-network pod)', '10.99.0.21', null],
    ['an IPv6 pod of the peer', 'fd99:102:0:1::5', null],
    ['the same, written non-canonically', 'FD99:102:0:1:0:0:0:5', null],
    ['IPv4 loopback', '127.0.0.1', 'loopback'],
    ['IPv4 loopback, not .1', '127.1.2.3', 'loopback'],
    ['IPv4 unspecified', '0.0.0.0', 'unspecified'],
    ['IPv4 multicast', '224.0.0.1', 'multicast'],
    ['IPv4 broadcast', '255.255.255.255', 'broadcast'],
    ['class E', '240.0.0.1', 'reserved'],
    ['IPv4 link-local (cloud metadata)', '169.254.169.254', 'link-local'],
    ['IPv6 loopback', '::1', 'loopback'],
    ['IPv6 unspecified', '::', 'unspecified'],
    ['IPv6 multicast', 'ff02::1', 'multicast'],
    ['IPv6 link-local', 'fe80::1', 'link-local'],
    ['IPv4-mapped loopback', '::ffff:127.0.0.1', 'ipv4-mapped'],
    ['IPv4-mapped pod of the peer', '::ffff:10.102.1.5', 'ipv4-mapped'],
    ['IPv4-compatible loopback', '::127.0.0.1', 'reserved'],
    ['a pod IP of the local cluster', '10.101.1.5', 'local-pod-cidr'],
    ['an IPv6 pod IP of the local cluster', 'fd99:101:0:1::5', 'local-pod-cidr'],
    ['the local ClusterIP', '10.111.0.20', 'local-cluster-ip'],
    ['the local IPv6 ClusterIP', 'fd99:111::20', 'local-cluster-ip'],
    ['an unused address of the local service CIDR', '10.111.0.99', 'local-service-cidr'],
    ['a node IP of the local cluster', '10.99.0.11', 'local-node-ip'],
    ['a pod of another peer', '10.103.1.5', 'other-peer'],
    ['a node IP of another peer', '10.99.0.31', 'other-peer'],
    ['next to the peer pod CIDR', '10.102.2.5', 'not-owned'],
    ['anywhere else', '8.8.8.8', 'not-owned'],
  ];

  test.each(table)('%s (%s) -> %s', (_what, address, reason) => {
    const result = admitBackends(['10.102.1.6', address]);
    const echo = result.peers[0].services[0];
    expect(Object.keys(echo.backends).sort()).toEqual((reason === null ? ['10.102.1.6', address] : ['10.102.1.6']).sort());
    expect(result.refusals.map((r) => [r.kind, r.record, r.address, r.reason])).toEqual(reason === null ? [] : [['service', 'default/echo', address, reason]]);
    for (const r of result.refusals) expect(r.why).toMatch(new RegExp(`^service default/echo: backend ${address.replace(/\./g, '\\.')} is `));
  });

  test('a service with nothing refused is passed through as the same object', () => {
    const svc = service('west', 'echo', ['10.102.1.5']);
    const result = admitPeerRecords(LOCAL, [peer('west', { nodes: [WEST_WORKER], services: [svc] })]);
    expect(result.peers[0].services[0]).toBe(svc);
  });

  test('without a configured service CIDR the local ClusterIPs are still refused', () => {
    const result = admitPeerRecords({ ...LOCAL, serviceCidrs: [] }, [
      peer('west', { nodes: [WEST_WORKER], services: [service('west', 'echo', ['10.111.0.20', '10.111.0.99'])] }),
    ]);
    expect(result.refusals.map((r) => [r.address, r.reason])).toEqual([
      ['10.111.0.20', 'local-cluster-ip'],
      ['10.111.0.99', 'not-owned'],
    ]);
  });
});

describe('node records', () => {
  const table: [string, NodeRecord, string, OwnershipReason][] = [
    ['pod CIDR inside the local pod range', node('west', 'n', ['10.99.0.22'], '10.101.3.0/24'), '10.101.3.0/24', 'local-pod-cidr'],
    ['pod CIDR around a local node pod CIDR', node('west', 'n', ['10.99.0.22'], '10.101.0.0/16'), '10.101.0.0/16', 'local-pod-cidr'],
    ['pod CIDR holding the local ClusterIP', node('west', 'n', ['10.99.0.22'], '10.111.0.0/24'), '10.111.0.0/24', 'local-cluster-ip'],
    ['pod CIDR in the local service CIDR', node('west', 'n', ['10.99.0.22'], '10.111.7.0/24'), '10.111.7.0/24', 'local-service-cidr'],
    ['pod CIDR holding a local node IP', node('west', 'n', ['10.99.0.22'], '10.99.0.0/24'), '10.99.0.0/24', 'local-node-ip'],
    ['IPv6 pod CIDR inside the local one', node('west', 'n', ['10.99.0.22'], null, 'fd99:101:0:1:8000::/80'), 'fd99:101:0:1:8000::/80', 'local-pod-cidr'],
    ['loopback pod CIDR', node('west', 'n', ['10.99.0.22'], '127.0.0.0/24'), '127.0.0.0/24', 'loopback'],
    ['the whole IPv4 space', node('west', 'n', ['10.99.0.22'], '0.0.0.0/0'), '0.0.0.0/0', 'too-broad'],
    ['the whole IPv6 space', node('west', 'n', ['10.99.0.22'], null, '::/0'), '::/0', 'too-broad'],
    ['/7: wider than any pod CIDR', node('west', 'n', ['10.99.0.22'], '12.0.0.0/7'), '12.0.0.0/7', 'too-broad'],
    ['link-local IPv6 pod CIDR', node('west', 'n', ['10.99.0.22'], null, 'fe80::/64'), 'fe80::/64', 'link-local'],
    ['multicast pod CIDR', node('west', 'n', ['10.99.0.22'], '239.1.0.0/16'), '239.1.0.0/16', 'multicast'],
    ['pod CIDR with host bits', node('west', 'n', ['10.99.0.22'], '10.102.3.1/24'), '10.102.3.1/24', 'not-a-network'],
    ['node IP of the local cluster', node('west', 'n', ['10.99.0.11'], '10.102.3.0/24'), '10.99.0.11', 'local-node-ip'],
    ['loopback node IP', node('west', 'n', ['127.0.0.1'], '10.102.3.0/24'), '127.0.0.1', 'loopback'],
    ['IPv4-mapped node IP', node('west', 'n', ['::ffff:10.99.0.22'], '10.102.3.0/24'), '::ffff:10.99.0.22', 'ipv4-mapped'],
  ];

  test.each(table)('%s', (_what, forged, address, reason) => {
    const result = admitPeerRecords(LOCAL, [peer('west', { nodes: [WEST_WORKER, forged], services: [service('west', 'echo', ['10.102.1.5', '10.102.3.5'])] })]);
    expect(result.peers[0].nodes).toEqual([WEST_WORKER]);
    const [refusal, ...rest] = result.refusals;
    expect(refusal).toMatchObject({ cluster: 'west', kind: 'node', record: 'n', reason });
    expect(refusal.address).toContain(address);
    // The refused node owns nothing: a backend in its pod CIDR is not the peer's either.
    expect(Object.keys(result.peers[0].services[0].backends)).toEqual(['10.102.1.5']);
    expect(rest.map((r) => [r.address, r.reason])).toEqual([['10.102.3.5', 'not-owned']]);
  });

  test('a node with several addresses and both families is admitted whole', () => {
    const result = admitPeerRecords(LOCAL, [peer('west', { nodes: [WEST_WORKER] })]);
    expect(result.refusals).toEqual([]);
    expect(result.peers[0].nodes).toEqual([WEST_WORKER]);
    expect([...result.claims].sort()).toEqual(
      [
        ['10.102.1.0/24', 'west'],
        ['fd99:102:0:1::/64', 'west'],
        ['10.99.0.21', 'west'],
        ['fd99:0:0:99::21', 'west'],
      ].sort(),
    );
  });
});

describe('two peers claiming the same addresses', () => {
  const hijack = node('north', 'north-hijack', ['10.99.0.32'], '10.102.1.0/25');

  test('claims new to both are refused on both sides (contested), and their backends with them', () => {
    const result = admitPeerRecords(LOCAL, [
      peer('west', { nodes: [WEST_WORKER], services: [service('west', 'echo', ['10.102.1.5'])] }),
      peer('north', { nodes: [NORTH_WORKER, hijack], services: [service('north', 'echo', ['10.102.1.9', '10.103.1.9'])] }),
    ]);
    expect(result.refusals.map((r) => [r.cluster, r.kind, r.record, r.reason])).toEqual([
      ['west', 'node', 'west-worker', 'contested'],
      ['north', 'node', 'north-hijack', 'contested'],
      ['west', 'service', 'default/echo', 'not-owned'],
      ['north', 'service', 'default/echo', 'not-owned'],
    ]);
    expect(Object.keys(result.peers[1].services[0].backends)).toEqual(['10.103.1.9']);
  });

  test('a peer that held them keeps them; the newcomer is refused (other-peer)', () => {
    const before = admitBackends(['10.102.1.5']);
    const result = admitPeerRecords(
      LOCAL,
      [
        peer('west', { nodes: [WEST_WORKER], services: [service('west', 'echo', ['10.102.1.5'])] }),
        peer('north', { nodes: [NORTH_WORKER, hijack], services: [service('north', 'echo', ['10.102.1.9', '10.103.1.9'])] }),
      ],
      before,
    );
    expect(result.refusals.map((r) => [r.cluster, r.kind, r.record, r.address, r.reason])).toEqual([
      ['north', 'node', 'north-hijack', '10.102.1.0/25', 'other-peer'],
      ['north', 'service', 'default/echo', '10.102.1.9', 'other-peer'],
    ]);
    expect(result.refusals[0].why).toBe('node north-hijack: 10.102.1.0/25 overlaps 10.102.1.0/24, which cluster "west" publishes');
    expect(result.peers[0].nodes).toEqual([WEST_WORKER]);
    expect(Object.keys(result.peers[0].services[0].backends)).toEqual(['10.102.1.5']);
    expect(result.claims.get('10.102.1.0/24')).toBe('west');
    expect(result.claims.has('10.102.1.0/25')).toBe(false);
  });

  test('a node IP another peer publishes is refused the same way', () => {
    const before = admitBackends([]);
    const result = admitPeerRecords(LOCAL, [peer('west', { nodes: [WEST_WORKER] }), peer('north', { nodes: [NORTH_WORKER, node('north', 'copy', ['10.99.0.21'], null)] })], before);
    expect(result.refusals.map((r) => [r.record, r.address, r.reason])).toEqual([['copy', '10.99.0.21', 'other-peer']]);
  });

  test('the order of the peers does not change the decision', () => {
    const peers = [peer('west', { nodes: [WEST_WORKER] }), peer('north', { nodes: [NORTH_WORKER, hijack] })];
    const key = (r: { cluster: string; record: string; reason: string }) => `${r.cluster}|${r.record}|${r.reason}`;
    expect(admitPeerRecords(LOCAL, peers).refusals.map(key).sort()).toEqual(admitPeerRecords(LOCAL, [...peers].reverse()).refusals.map(key).sort());
  });
});

describe('records arriving in any order', () => {
  const svc = service('west', 'echo', ['10.102.1.5']);

  test('a backend published before its node record is held back, then admitted when the node arrives', () => {
    const early = admitPeerRecords(LOCAL, [peer('west', { services: [svc] })]);
    expect(early.peers[0].services[0].backends).toEqual({});
    expect(early.refusals.map((r) => r.reason)).toEqual(['not-owned']);
    const later = admitPeerRecords(LOCAL, [peer('west', { nodes: [WEST_WORKER], services: [svc] })], early);
    expect(later.peers[0].services[0]).toBe(svc);
    expect(later.refusals).toEqual([]);
  });

  test('a backend whose node record disappears is withdrawn', () => {
    const first = admitPeerRecords(LOCAL, [peer('west', { nodes: [WEST_WORKER], services: [svc] })]);
    const gone = admitPeerRecords(LOCAL, [peer('west', { services: [svc] })], first);
    expect(gone.peers[0].services[0].backends).toEqual({});
    expect(gone.refusals.map((r) => [r.address, r.reason])).toEqual([['10.102.1.5', 'not-owned']]);
    expect(gone.claims.size).toBe(0);
  });

  test('a local range appearing later turns an admitted backend into a refused one', () => {
    const local: LocalAddresses = { ...LOCAL, podCidrs: [...LOCAL.podCidrs, '10.102.1.0/24'] };
    const result = admitPeerRecords(local, [peer('west', { nodes: [WEST_WORKER], services: [svc] })]);
    expect(result.refusals.map((r) => [r.kind, r.reason])).toEqual([
      ['node', 'local-pod-cidr'],
      ['service', 'local-pod-cidr'],
    ]);
  });
});

describe('ipcache entries', () => {
  const table: [string, IPCacheEntry, string | null, OwnershipReason | null][] = [
    ['a pod of the peer', ipcache('10.102.1.7'), null, null],
    ['an IPv6 pod of the peer', ipcache('fd99:102:0:1::7', 'fd99:0:0:99::21'), null, null],
    ['a prefix inside the peer pod CIDR', ipcache('10.102.1.0/26'), null, null],
    ['without a HostIP', ipcache('10.102.1.7', ''), null, null],
    ['loopback', ipcache('127.0.0.1'), '127.0.0.1', 'loopback'],
    ['a pod of the local cluster', ipcache('10.101.1.7'), '10.101.1.7', 'local-pod-cidr'],
    ['the local ClusterIP', ipcache('10.111.0.20'), '10.111.0.20', 'local-cluster-ip'],
    ['a prefix wider than the peer pod CIDR', ipcache('10.102.0.0/16'), '10.102.0.0/16', 'not-owned'],
    ['a prefix around the local pods', ipcache('10.101.0.0/16'), '10.101.0.0/16', 'local-pod-cidr'],
    ['a prefix around the local cluster', ipcache('10.0.0.0/8'), '10.0.0.0/8', 'local-cluster-ip'],
    ['a pod of another peer', ipcache('10.103.1.7'), '10.103.1.7', 'other-peer'],
    ['HostIP a local node', ipcache('10.102.1.7', '10.99.0.11'), '10.99.0.11', 'local-node-ip'],
    ['HostIP nobody publishes', ipcache('10.102.1.7', '10.99.0.99'), '10.99.0.99', 'not-owned'],
  ];

  test.each(table)('%s', (_what, entry, address, reason) => {
    const result = admitPeerRecords(LOCAL, [peer('west', { nodes: [WEST_WORKER], ipcache: [entry] }), peer('north', { nodes: [NORTH_WORKER] })]);
    expect(result.peers[0].ipcache).toEqual(reason === null ? [entry] : []);
    expect(result.refusals.map((r) => [r.kind, r.address, r.reason])).toEqual(reason === null ? [] : [['ipcache', address, reason]]);
  });
});
