/** The in-memory ipcache behind `GET /identity?ip=`, and the daemon's command line. */
import { maskFromPrefixLength } from '../../lib/kvstore/codecs.js';
import { IdentityIndex } from '../../agent/identities.js';
import { parseAgentArgs } from '../../agent/flags.js';
import { parseDuration } from '../../lib/duration.js';

const LABELS = 'k8s:app=echo;k8s:io.cilium.k8s.policy.cluster=west;k8s:io.kubernetes.pod.namespace=apps;';

describe('IdentityIndex', () => {
  const index = new IdentityIndex([
    {
      name: 'west',
      id: 2,
      identities: new Map([[0x20001, LABELS]]),
      ipcache: [
        { IP: '10.102.1.5', Mask: null, HostIP: '10.99.0.3', ID: 0x20001, K8sNamespace: 'apps', K8sPodName: 'echo-1' },
        { IP: 'fd99:102::5', Mask: null, HostIP: '', ID: 0x20001, K8sNamespace: 'apps', K8sPodName: 'echo-1' },
        { IP: '10.102.0.0', Mask: maskFromPrefixLength(16, 4), HostIP: '', ID: 0x20002, K8sNamespace: '', K8sPodName: '' },
      ],
    },
  ]);

  it('finds the cluster, identity, labels and pod of an address', () => {
    expect(index.lookup('10.102.1.5')).toEqual({
      prefix: '10.102.1.5',
      cluster: 'west',
      clusterId: 2,
      identity: 0x20001,
      labels: LABELS,
      namespace: 'apps',
      pod: 'echo-1',
      hostIP: '10.99.0.3',
    });
    expect(index.lookup('fd99:102:0::5')?.pod).toBe('echo-1'); // any spelling of the address
  });

  it('falls back to the longest prefix, and to nothing', () => {
    expect(index.lookup('10.102.7.7')).toMatchObject({ prefix: '10.102.0.0/16', identity: 0x20002, labels: null });
    expect(index.lookup('10.103.0.1')).toBeNull();
    expect(index.lookup('not-an-ip')).toBeNull();
  });

  it('lists the entries for the LPM maps: canonical networks with identity and cluster', () => {
    expect(index.ipcacheEntries()).toEqual([
      { cidr: '10.102.1.5/32', identity: 0x20001, clusterId: 2 },
      { cidr: 'fd99:102::5/128', identity: 0x20001, clusterId: 2 },
      { cidr: '10.102.0.0/16', identity: 0x20002, clusterId: 2 },
    ]);
  });

  it('masks host bits off and gives a prefix two clusters claim to the lower cluster ID, whatever the view order', () => {
    const view = (name: string, id: number, ip: string) => ({
      name,
      id,
      identities: new Map<number, string>(),
      ipcache: [{ IP: ip, Mask: maskFromPrefixLength(24, 4), HostIP: '', ID: id << 16, K8sNamespace: '', K8sPodName: '' }],
    });
    for (const views of [[view('north', 3, '10.50.0.9'), view('west', 2, '10.50.0.0')], [view('west', 2, '10.50.0.0'), view('north', 3, '10.50.0.9')]]) {
      const both = new IdentityIndex(views);
      expect(both.ipcacheEntries()).toEqual([{ cidr: '10.50.0.0/24', identity: 2 << 16, clusterId: 2 }]);
      expect(both.lookup('10.50.0.77')).toMatchObject({ prefix: '10.50.0.0/24', cluster: 'west' });
    }
  });
});

describe('the agent command line', () => {
  const required = ['--cluster-name', 'east', '--cluster-id', '1', '--node-name', 'n1', '--bpf-pin-dir', '/sys/fs/bpf/x', '--cgroup', '/sys/fs/cgroup/x'];

  it('has the documented defaults', () => {
    expect(parseAgentArgs(required)).toMatchObject({
      clusterName: 'east',
      clusterId: 1,
      namespace: 'clustermesh-system',
      peerCacheTtlMs: 300_000,
      healthChecks: true,
      routes: true,
      healthAddr: { host: '0.0.0.0', port: 9879 },
      statusAddr: { host: '127.0.0.1', port: 9880 },
      health: { intervalMs: 300, timeoutMs: 500, failureThreshold: 2 },
      podCidrs: [],
      serviceCidrs: [],
    });
  });

  it('reads the local ranges as canonical CIDRs', () => {
    const config = parseAgentArgs([...required, '--pod-cidrs', '10.101.0.0/16, FD99:101::/48', '--service-cidrs=10.111.0.0/16']);
    expect(config).toMatchObject({ podCidrs: ['10.101.0.0/16', 'fd99:101::/48'], serviceCidrs: ['10.111.0.0/16'] });
  });

  it('parses durations and addresses', () => {
    expect(['500ms', '30s', '5m', '1h', '250'].map(parseDuration)).toEqual([500, 30_000, 300_000, 3_600_000, 250]);
    const config = parseAgentArgs([...required, '--peer-cache-ttl', '2s', '--status-addr', '[::1]:7000', '--no-health-checks']);
    expect(config).toMatchObject({ peerCacheTtlMs: 2000, statusAddr: { host: '::1', port: 7000 }, healthChecks: false });
  });

  it.each([
    [['--cluster-id', '300'], /cluster-id/],
    [['--cluster-name', 'East'], /cluster-name/],
    [['--peer-cache-ttl', 'soon'], /not a duration/],
    [['--health-addr', 'localhost'], /not host:port/],
    [['--service-cidrs', '10.111.0.1/16'], /--service-cidrs: "10.111.0.1\/16" has host bits set: did you mean 10.111.0.0\/16\?/],
    [['--pod-cidrs', '10.101.0.0'], /--pod-cidrs: "10.101.0.0" is not a CIDR/],
  ])('rejects %j in one line', (extra, message) => {
    expect(() => parseAgentArgs([...required, ...extra])).toThrow(message);
  });
});
