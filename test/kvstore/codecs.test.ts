import {
  CLUSTER_LABEL,
  clusterIDProblem,
  clusterNameProblem,
  decodeClusterConfig,
  decodeClusterService,
  decodeIPCacheEntry,
  decodeIdentityLabels,
  decodeNode,
  encodeClusterConfig,
  encodeClusterService,
  encodeIPCacheEntry,
  encodeIdentityLabels,
  encodeNode,
  maskFromPrefixLength,
  maskPrefixLength,
} from '../../lib/kvstore/codecs.js';
import {
  HEARTBEAT_KEY,
  SERVICES_PREFIX,
  clusterConfigKey,
  identityKey,
  ipcacheKey,
  nodeKey,
  parseKey,
  serviceKey,
  syncedCanaryKey,
} from '../../lib/kvstore/keys.js';
import type { ClusterService, IPCacheEntry, NodeRecord } from '../../lib/kvstore/types.js';
import { validateRemoteRecord, type RemoteContext } from '../../lib/kvstore/validate.js';

const WEST: RemoteContext = { cluster: 'west', clusterID: 2 };

const echo: ClusterService = {
  cluster: 'west',
  namespace: 'default',
  name: 'echo',
  frontends: { '10.112.0.10': { http: { Protocol: 'TCP', Port: 80 } } },
  backends: {
    '10.102.1.5': { http: { Protocol: 'TCP', Port: 8080 } },
    'fd99:102::5': { '': { Protocol: 'UDP', Port: 53 } },
  },
  labels: {},
  selector: { app: 'echo' },
  includeExternal: true,
  shared: true,
  clusterID: 2,
};

const node: NodeRecord = {
  Name: 'west-worker-1',
  Cluster: 'west',
  IPAddresses: [{ Type: 'InternalIP', IP: '10.99.0.21' }],
  IPv4AllocCIDR: { IP: '10.102.1.0', Mask: maskFromPrefixLength(24, 4) },
  IPv6AllocCIDR: { IP: 'fd99:102:0:1::', Mask: maskFromPrefixLength(64, 6) },
  ClusterID: 2,
};

const pod: IPCacheEntry = {
  IP: '10.102.1.5',
  Mask: null,
  HostIP: '10.99.0.21',
  ID: (2 << 16) | 300,
  K8sNamespace: 'default',
  K8sPodName: 'echo-7d9f-abcde',
  NamedPorts: [{ Name: 'http', Port: 8080, Protocol: 'TCP' }],
};

const identityLabels = {
  'k8s:app': 'echo',
  'k8s:io.kubernetes.pod.namespace': 'default',
  [CLUSTER_LABEL]: 'west',
};

const svcKey = serviceKey('west', 'default', 'echo');
const withSvc = (patch: Record<string, unknown>): string =>
  JSON.stringify({ ...JSON.parse(encodeClusterService(echo)), ...patch });
const withNode = (patch: Record<string, unknown>): string =>
  JSON.stringify({ ...JSON.parse(encodeNode(node)), ...patch });

describe('keys', () => {
  it.each([
    [clusterConfigKey('west'), { kind: 'config', cluster: 'west' }],
    [
      serviceKey('west', 'default', 'echo'),
      { kind: 'service', cluster: 'west', namespace: 'default', name: 'echo' },
    ],
    [nodeKey('west', 'west-worker-1'), { kind: 'node', cluster: 'west', name: 'west-worker-1' }],
    [identityKey(131372), { kind: 'identity', id: 131372 }],
    [ipcacheKey('10.102.1.5'), { kind: 'ipcache', prefix: '10.102.1.5' }],
    [ipcacheKey('10.102.1.0/24'), { kind: 'ipcache', prefix: '10.102.1.0/24' }],
    [ipcacheKey('fd99:102::5'), { kind: 'ipcache', prefix: 'fd99:102::5' }],
    [syncedCanaryKey('west', SERVICES_PREFIX), { kind: 'synced', cluster: 'west', prefix: SERVICES_PREFIX }],
    [HEARTBEAT_KEY, { kind: 'heartbeat' }],
  ])('round-trips %s', (key, parsed) => {
    expect(parseKey(key)).toEqual(parsed);
  });

  it.each([
    'cilium/state/services/v1/west/default',
    'cilium/state/services/v1/west/default/echo/extra',
    'cilium/state/services/v1/west//echo',
    'cilium/state/nodes/v1/west',
    'cilium/state/identities/v1/id/0x10',
    'cilium/state/identities/v1/id/007',
    'cilium/state/ip/v1/default/',
    'cilium/state/ip/v1/other/10.0.0.1',
    'cilium/synced/west',
    'cilium/cluster-config/west/extra',
    'cilium/elsewhere',
  ])('rejects %s', (key) => {
    expect(parseKey(key)).toBeNull();
  });
});

describe('cluster names and IDs', () => {
  it.each([
    ['west', null],
    ['a', null],
    ['cluster-1', null],
    ['x'.repeat(32), null],
    ['x'.repeat(33), 'is longer than 32 characters'],
    ['', 'is empty'],
    ['West', 'must be lowercase'],
    ['-west', 'must be lowercase'],
    ['west-', 'must be lowercase'],
    ['we.st', 'must be lowercase'],
  ])('name %j → %s', (name, problem) => {
    const got = clusterNameProblem(name);
    if (problem === null) expect(got).toBeNull();
    else expect(got).toContain(problem);
  });

  it.each([
    [1, true],
    [255, true],
    [0, false],
    [256, false],
    [1.5, false],
    ['2', false],
  ])('id %j valid: %s', (id, valid) => {
    expect(clusterIDProblem(id) === null).toBe(valid);
  });
});

describe('codecs', () => {
  it('encode → decode is the identity, and the bytes do not depend on key order', () => {
    const shuffled: ClusterService = {
      ...echo,
      selector: { b: '2', a: '1' },
      backends: { ...echo.backends },
    };
    const reordered: ClusterService = { ...shuffled, selector: { a: '1', b: '2' } };
    expect(encodeClusterService(shuffled)).toBe(encodeClusterService(reordered));
    expect(decodeClusterService(svcKey, encodeClusterService(echo))).toEqual({ ok: true, value: echo });
    expect(decodeNode(nodeKey('west', node.Name), encodeNode(node))).toEqual({ ok: true, value: node });
    expect(decodeIPCacheEntry(ipcacheKey(pod.IP), encodeIPCacheEntry(pod))).toEqual({ ok: true, value: pod });
    const config = { id: 2, capabilities: { syncedCanaries: true, maxConnectedClusters: 255 } };
    expect(decodeClusterConfig(clusterConfigKey('west'), encodeClusterConfig(config))).toEqual({
      ok: true,
      value: config,
    });
  });

  it('writes the Cilium wire format', () => {
    expect(JSON.parse(encodeClusterService(echo))).toEqual({
      cluster: 'west',
      namespace: 'default',
      name: 'echo',
      frontends: { '10.112.0.10': { http: { Protocol: 'TCP', Port: 80 } } },
      backends: {
        '10.102.1.5': { http: { Protocol: 'TCP', Port: 8080 } },
        'fd99:102::5': { '': { Protocol: 'UDP', Port: 53 } },
      },
      labels: {},
      selector: { app: 'echo' },
      includeExternal: true,
      shared: true,
      clusterID: 2,
    });
    expect(
      encodeClusterConfig({ id: 2, capabilities: { syncedCanaries: true, maxConnectedClusters: 255 } }),
    ).toBe('{"id":2,"capabilities":{"syncedCanaries":true,"maxConnectedClusters":255}}');
    expect(encodeIdentityLabels(identityLabels)).toBe(
      'k8s:app=echo;k8s:io.cilium.k8s.policy.cluster=west;k8s:io.kubernetes.pod.namespace=default;',
    );
    expect(JSON.parse(encodeNode(node)).IPv4AllocCIDR).toEqual({ IP: '10.102.1.0', Mask: '////AA==' });
  });

  it('reads a Cilium cluster config with omitted capabilities', () => {
    expect(decodeClusterConfig('k', '{"id":7}')).toEqual({
      ok: true,
      value: { id: 7, capabilities: { syncedCanaries: false, maxConnectedClusters: 255 } },
    });
  });

  it.each([
    [24, 4, '////AA=='],
    [32, 4, '/////w=='],
    [0, 4, 'AAAAAA=='],
    [64, 6, '//////////8AAAAAAAAAAA=='],
  ] as const)('mask /%d (IPv%d) is %s', (len, family, base64) => {
    expect(maskFromPrefixLength(len, family)).toBe(base64);
    expect(maskPrefixLength(base64)).toBe(len);
  });

  it.each(['/wD/AA==', 'AAA=', 'not base64!'])('rejects mask %s', (mask) => {
    expect(maskPrefixLength(mask)).toBeNull();
  });

  it.each([
    ['k8s:a=1;k8s:b=;', { ok: true, value: { 'k8s:a': '1', 'k8s:b': '' } }],
    [
      'k8s:a=1',
      { ok: false, reason: 'k: labels: must be "source:key=value;" entries, each ending with ";"' },
    ],
    ['a=1;', { ok: false, reason: 'k: labels[0]: "a=1" is not "source:key=value"' }],
    ['k8s:a=1;k8s:a=2;', { ok: false, reason: 'k: labels[1]: label k8s:a appears twice' }],
  ])('identity labels %j', (text, expected) => {
    expect(decodeIdentityLabels('k', text)).toEqual(expected);
  });
});

describe('validateRemoteRecord: the import security boundary', () => {
  type Case = [
    string,
    Parameters<typeof validateRemoteRecord>[0],
    string,
    string | Uint8Array,
    RemoteContext,
    string,
  ];
  const rejections: Case[] = [
    ['unparsable bytes', 'service', svcKey, '{"cluster":', WEST, `${svcKey}: value is not valid JSON`],
    [
      'a 1 MiB value, before parsing',
      'service',
      svcKey,
      Buffer.alloc(1 << 20, 0x20),
      WEST,
      `${svcKey}: value of 1048576 bytes exceeds the 524288-byte limit`,
    ],
    [
      'a value over a custom limit',
      'service',
      svcKey,
      encodeClusterService(echo),
      { ...WEST, maxBytes: 64 },
      'exceeds the 64-byte limit',
    ],
    [
      'another cluster in the key',
      'service',
      serviceKey('east', 'default', 'echo'),
      withSvc({ cluster: 'east' }),
      WEST,
      'key names cluster "east" but this connection is to cluster "west"',
    ],
    [
      'another cluster in the value',
      'service',
      svcKey,
      withSvc({ cluster: 'east' }),
      WEST,
      'cluster: value says "east" but the key says "west"',
    ],
    [
      'another namespace in the value',
      'service',
      svcKey,
      withSvc({ namespace: 'kube-system' }),
      WEST,
      'namespace: value says "kube-system" but the key says "default"',
    ],
    [
      'another name in the value',
      'service',
      svcKey,
      withSvc({ name: 'other' }),
      WEST,
      'name: value says "other" but the key says "echo"',
    ],
    [
      'a clusterID mismatch',
      'service',
      svcKey,
      withSvc({ clusterID: 3 }),
      WEST,
      'clusterID: 3 is not the cluster ID 2 of "west"',
    ],
    [
      'an unknown clusterID',
      'service',
      svcKey,
      encodeClusterService(echo),
      { cluster: 'west' },
      'cluster ID of "west" is not known yet',
    ],
    [
      'a backend address that does not parse',
      'service',
      svcKey,
      withSvc({ backends: { '10.1.2.300': {} } }),
      WEST,
      'backends["10.1.2.300"]: is not an IP address',
    ],
    [
      'a frontend address with a zone',
      'service',
      svcKey,
      withSvc({ frontends: { 'fe80::1%eth0': {} } }),
      WEST,
      'frontends["fe80::1%eth0"]: is not an IP address',
    ],
    [
      'a port out of range',
      'service',
      svcKey,
      withSvc({ backends: { '10.0.0.1': { http: { Protocol: 'TCP', Port: 70000 } } } }),
      WEST,
      'backends["10.0.0.1"]["http"].Port: must be an integer from 1 to 65535, got 70000',
    ],
    [
      'port zero',
      'service',
      svcKey,
      withSvc({ backends: { '10.0.0.1': { http: { Protocol: 'TCP', Port: 0 } } } }),
      WEST,
      '.Port: must be an integer from 1 to 65535, got 0',
    ],
    [
      'an unknown protocol',
      'service',
      svcKey,
      withSvc({ backends: { '10.0.0.1': { x: { Protocol: 'ICMP', Port: 1 } } } }),
      WEST,
      '.Protocol: must be TCP or UDP, got "ICMP"',
    ],
    [
      'a bad port name',
      'service',
      svcKey,
      withSvc({ backends: { '10.0.0.1': { 'HTTP!': { Protocol: 'TCP', Port: 1 } } } }),
      WEST,
      'port name is not a DNS label',
    ],
    [
      'a name that is not a DNS label',
      'service',
      serviceKey('west', 'default', 'Echo'),
      withSvc({ name: 'Echo' }),
      WEST,
      'name: "Echo" is not a DNS label',
    ],
    [
      'a missing field',
      'service',
      svcKey,
      JSON.stringify({ ...JSON.parse(encodeClusterService(echo)), shared: undefined }),
      WEST,
      'shared: is missing',
    ],
    [
      'a wrongly typed field',
      'service',
      svcKey,
      withSvc({ shared: 'yes' }),
      WEST,
      'shared: must be true or false, got string',
    ],
    ['a non-object value', 'service', svcKey, '[]', WEST, 'value: must be an object, got an array'],
    [
      'a key of another kind',
      'service',
      nodeKey('west', 'n1'),
      encodeClusterService(echo),
      WEST,
      'is not a service key',
    ],
    [
      'a node of another cluster',
      'node',
      nodeKey('west', node.Name),
      withNode({ Cluster: 'east' }),
      WEST,
      'Cluster: value says "east" but the key says "west"',
    ],
    [
      'a node whose name differs from its key',
      'node',
      nodeKey('west', 'other'),
      encodeNode(node),
      WEST,
      'Name: value says "west-worker-1" but the key says "other"',
    ],
    [
      'a node with a bad address',
      'node',
      nodeKey('west', node.Name),
      withNode({ IPAddresses: [{ Type: 'InternalIP', IP: 'ten' }] }),
      WEST,
      'IPAddresses[0].IP: "ten" is not an IP address',
    ],
    [
      'a node with a bad mask',
      'node',
      nodeKey('west', node.Name),
      withNode({ IPv4AllocCIDR: { IP: '10.0.0.0', Mask: '/wD/AA==' } }),
      WEST,
      'IPv4AllocCIDR.Mask: "/wD/AA==" is not a base64 network mask',
    ],
    [
      'a node with an IPv6 mask on IPv4',
      'node',
      nodeKey('west', node.Name),
      withNode({ IPv4AllocCIDR: { IP: '10.0.0.0', Mask: maskFromPrefixLength(64, 6) } }),
      WEST,
      'mask does not match the IPv4 address',
    ],
    [
      'a node with a clusterID mismatch',
      'node',
      nodeKey('west', node.Name),
      withNode({ ClusterID: 9 }),
      WEST,
      'ClusterID: 9 is not the cluster ID 2 of "west"',
    ],
    [
      'an identity of another cluster',
      'identity',
      identityKey((2 << 16) | 300),
      encodeIdentityLabels({ ...identityLabels, [CLUSTER_LABEL]: 'east' }),
      WEST,
      `label ${CLUSTER_LABEL} is "east", not "west"`,
    ],
    [
      'an identity without cluster label',
      'identity',
      identityKey((2 << 16) | 300),
      'k8s:app=echo;',
      WEST,
      `label ${CLUSTER_LABEL} is null`,
    ],
    [
      'an identity in another cluster range',
      'identity',
      identityKey((3 << 16) | 300),
      encodeIdentityLabels(identityLabels),
      WEST,
      'identity cluster bits: 3 is not the cluster ID 2',
    ],
    [
      'an ipcache entry for another IP',
      'ipcache',
      ipcacheKey('10.102.1.6'),
      encodeIPCacheEntry(pod),
      WEST,
      'IP/Mask: value says "10.102.1.5" but the key says "10.102.1.6"',
    ],
    [
      'an ipcache entry of another cluster identity',
      'ipcache',
      ipcacheKey(pod.IP),
      encodeIPCacheEntry({ ...pod, ID: (5 << 16) | 1 }),
      WEST,
      'ID cluster bits: 5 is not the cluster ID 2',
    ],
    [
      'an ipcache entry with a bad host IP',
      'ipcache',
      ipcacheKey(pod.IP),
      encodeIPCacheEntry({ ...pod, HostIP: '1.2.3' }),
      WEST,
      'HostIP: "1.2.3" is not an IP address',
    ],
    [
      'a cluster config of another cluster',
      'config',
      clusterConfigKey('east'),
      '{"id":2}',
      WEST,
      'key names cluster "east"',
    ],
    [
      'a cluster config with another id',
      'config',
      clusterConfigKey('west'),
      '{"id":3}',
      WEST,
      'cluster config id 3 differs from the configured cluster ID 2',
    ],
    [
      'a cluster config with id 0',
      'config',
      clusterConfigKey('west'),
      '{"id":0}',
      { cluster: 'west' },
      'id: must be an integer from 1 to 255, got 0',
    ],
    [
      'a canary of another cluster',
      'synced',
      syncedCanaryKey('east', SERVICES_PREFIX),
      'now',
      WEST,
      'key names cluster "east"',
    ],
    ['an empty heartbeat', 'heartbeat', HEARTBEAT_KEY, '', WEST, 'value: is empty'],
  ];

  it.each(rejections)('rejects %s', (_what, kind, key, bytes, ctx, reason) => {
    const result = validateRemoteRecord(kind, key, bytes, ctx);
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.reason).toContain(reason);
    expect(result.ok ? '' : result.reason.startsWith(`${key}: `)).toBe(true);
  });

  it.each([
    ['service', svcKey, encodeClusterService(echo), echo],
    ['node', nodeKey('west', node.Name), encodeNode(node), node],
    ['identity', identityKey((2 << 16) | 300), encodeIdentityLabels(identityLabels), identityLabels],
    ['ipcache', ipcacheKey(pod.IP), encodeIPCacheEntry(pod), pod],
    [
      'ipcache',
      ipcacheKey('10.102.1.0/24'),
      encodeIPCacheEntry({ ...pod, IP: '10.102.1.0', Mask: maskFromPrefixLength(24, 4) }),
      { ...pod, IP: '10.102.1.0', Mask: '////AA==' },
    ],
    [
      'config',
      clusterConfigKey('west'),
      '{"id":2,"capabilities":{"syncedCanaries":true}}',
      { id: 2, capabilities: { syncedCanaries: true, maxConnectedClusters: 255 } },
    ],
    ['synced', syncedCanaryKey('west', SERVICES_PREFIX), '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'],
    ['heartbeat', HEARTBEAT_KEY, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'],
  ] as const)('accepts a valid %s record', (kind, key, bytes, value) => {
    expect(validateRemoteRecord(kind, key, bytes, WEST)).toEqual({ ok: true, value });
  });

  it('accepts unknown extra fields from newer Cilium writers and drops them', () => {
    const result = validateRemoteRecord('service', svcKey, withSvc({ portConfigs: { x: 1 } }), WEST);
    expect(result).toEqual({ ok: true, value: echo });
  });
});
