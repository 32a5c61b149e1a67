/** What the local cluster holds, as the agent and the kvstoremesh read it from its Nodes and Services (lib/k8s/local-addresses.ts). */
import type { V1Node, V1Service } from '@kubernetes/client-node';
import { LocalAddressTracker, localAddresses, sameLocalAddresses } from '../../lib/k8s/local-addresses.js';

const node = (name: string, podCIDRs: string[], addresses: string[]): V1Node => ({
  metadata: { name },
  spec: { podCIDR: podCIDRs[0], podCIDRs },
  status: { addresses: addresses.map((address, i) => ({ type: i === 0 ? 'InternalIP' : 'Hostname', address })) },
});
const service = (name: string, clusterIPs: string[]): V1Service => ({ metadata: { namespace: 'default', name }, spec: { clusterIP: clusterIPs[0], clusterIPs } });

describe('localAddresses', () => {
  const nodes = [node('east-worker', ['10.101.1.0/24', 'fd99:101:0:1::/64'], ['10.99.0.11', 'east-worker']), node('east-cp', ['10.101.0.0/24'], ['10.99.0.10'])];
  const services = [service('echo', ['10.111.0.20', 'fd99:111::20']), service('headless', ['None']), service('kubernetes', ['10.111.0.1'])];

  test('Nodes pod CIDRs and addresses, Services ClusterIPs (not "None", not host names), and the configured ranges', () => {
    expect(localAddresses(nodes, services, { podCidrs: ['10.101.0.0/16'], serviceCidrs: ['10.111.0.0/16'] })).toEqual({
      podCidrs: ['10.101.0.0/16', '10.101.0.0/24', '10.101.1.0/24', 'fd99:101:0:1::/64'],
      serviceCidrs: ['10.111.0.0/16'],
      clusterIPs: ['10.111.0.1', '10.111.0.20', 'fd99:111::20'],
      nodeIPs: ['10.99.0.10', '10.99.0.11'],
    });
  });

  test('equal content compares equal whatever the order it came in; a change does not', () => {
    const a = localAddresses(nodes, services, { podCidrs: [], serviceCidrs: [] });
    expect(sameLocalAddresses(a, localAddresses([...nodes].reverse(), [...services].reverse(), { podCidrs: [], serviceCidrs: [] }))).toBe(true);
    expect(sameLocalAddresses(a, localAddresses(nodes, services.slice(1), { podCidrs: [], serviceCidrs: [] }))).toBe(false);
  });
});

describe('LocalAddressTracker', () => {
  const worker = node('east-worker', ['10.101.1.0/24'], ['10.99.0.11']);
  const echo = service('echo', ['10.111.0.20']);
  const configured = { podCidrs: ['10.101.0.0/16'], serviceCidrs: ['10.111.0.0/16'] };

  test.each([
    ['not synced: nothing is known', false, [worker], [], 'null'],
    ['synced: the addresses', true, [worker], [echo], 'new'],
  ] as const)('%s', (_what, synced, nodes, services, expected) => {
    const tracker = new LocalAddressTracker({ synced: () => synced, nodes: () => nodes, services: () => services }, configured);
    const current = tracker.current();
    expect(current === null ? 'null' : 'new').toBe(expected);
    if (current) expect(current).toEqual(localAddresses(nodes, services, configured));
  });

  test('the same object while the content is the same; a new one once it changed', () => {
    let nodes: V1Node[] = [worker];
    const tracker = new LocalAddressTracker({ synced: () => true, nodes: () => nodes, services: () => [echo] }, configured);
    const first = tracker.current();
    nodes = [node('east-worker', ['10.101.1.0/24'], ['10.99.0.11'])]; // an update that changed nothing it reads
    tracker.changed();
    expect(tracker.current()).toBe(first);
    nodes = [...nodes, node('east-worker-2', ['10.101.2.0/24'], ['10.99.0.12'])];
    expect(tracker.current()).toBe(first); // not told of the change yet
    tracker.changed();
    const second = tracker.current();
    expect(second).not.toBe(first);
    expect(second?.nodeIPs).toEqual(['10.99.0.11', '10.99.0.12']);
  });
});
