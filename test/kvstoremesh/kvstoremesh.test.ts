/**
 * The kvstoremesh against three real etcds (TLS, client-cert auth, bootstrapped as the apiserver
 * does): the local cluster west and two peers, east (reached through a proxy the test can cut) and
 * north. Beside it, two agents' RemoteClusters: one reading the peers directly, one reading the
 * cache in west's etcd as the local reader. West's own addresses (what its informers would read)
 * are set by the test. The tests run in order and share this setup.
 */
import type { Etcd3 } from 'etcd3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import { RemoteClusters, type RemoteClusterView } from '../../agent/remote/remote-clusters.js';
import { bootstrapEtcd } from '../../clustermesh-apiserver/etcd-bootstrap.js';
import { KVStoreMesh, type LocalAddressSource } from '../../clustermesh-apiserver/kvstoremesh/kvstoremesh.js';
import {
  IDENTITY_CLUSTER_SHIFT,
  decodeClusterConfig,
  decodeClusterService,
  encodeClusterConfig,
  encodeClusterService,
  encodeIPCacheEntry,
} from '../../lib/kvstore/codecs.js';
import { createEtcdClient } from '../../lib/kvstore/etcd.js';
import type { LocalAddresses } from '../../lib/kvstore/ownership.js';
import {
  CACHE_PREFIX,
  SERVICES_PREFIX,
  cachedIdentityIdPrefix,
  cachedIpcacheClusterPrefix,
  cachedNodesClusterPrefix,
  cachedServicesClusterPrefix,
  clusterConfigKey,
  ipcacheKey,
  nodeKey,
  serviceKey,
  syncedCanaryKey,
  syncedClusterPrefix,
} from '../../lib/kvstore/keys.js';
import { ADMIN_USER, LOCAL_READER_USER } from '../../lib/kvstore/users.js';
import { createLogger } from '../../lib/log.js';
import { createMetricsRegistry } from '../../lib/metrics.js';
import { DirectoryPeerSource } from '../../lib/remotes/config-source.js';
import { EtcdHarness } from '../harness/etcd.js';
import { startAll } from '../harness/start-all.js';
import {
  LOCAL,
  PeerEtcd,
  agentCert,
  rotatedAgentCert,
  node,
  removePeerEntry,
  service,
  writePeerEntry,
} from '../agent-remote/helpers.js';
import { CuttableProxy, KEEPALIVE_NOTICE_MS, waitFor } from '../kvstore/helpers.js';

const EAST = { name: 'east', id: 2 };
const NORTH = { name: 'north', id: 3 };
const CACHE_TTL_MS = 1_500;
/** the drop itself: a few local etcd deletes */
const DROP_MARGIN_MS = 3_000;
const log = createLogger('kvstoremesh-test', { LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent' });
const backoff = { minTimeoutMs: 20, maxTimeoutMs: 300 };
const localConfig = encodeClusterConfig({
  id: LOCAL.id,
  capabilities: { syncedCanaries: true, maxConnectedClusters: 255 },
});
/** West's own addresses: no peer may publish them. */
const WEST_ADDRESSES: LocalAddresses = {
  podCidrs: ['10.101.0.0/16'],
  serviceCidrs: ['10.111.0.0/16'],
  clusterIPs: ['10.111.0.10'],
  nodeIPs: ['10.99.0.11'],
};
/** Each peer's worker owns 10.1<id>.0.0/16 and its node IP 10.99.0.2<id>. */
const podCidr = (id: number) => `10.1${id}.0.0/16`;
const workerIP = (id: number) => `10.99.0.2${id}`;

/** The local addresses as the kvstoremesh's informers would give them: unknown until set. */
class LocalAddressesFake implements LocalAddressSource {
  private value: LocalAddresses | null = null;
  private readonly listeners = new Set<() => void>();
  current(): LocalAddresses | null {
    return this.value;
  }
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  set(value: LocalAddresses): void {
    this.value = value;
    for (const listener of this.listeners) listener();
  }
}

describe('kvstoremesh with real etcds', () => {
  let local: EtcdHarness;
  let localAdmin: Etcd3;
  let east: PeerEtcd;
  let north: PeerEtcd;
  let proxy: CuttableProxy;
  let meshDir: string;
  let directDir: string;
  let cachedDir: string;
  let registry: Registry;
  let mesh: KVStoreMesh;
  let direct: RemoteClusters;
  let cached: RemoteClusters;
  const localAddresses = new LocalAddressesFake();
  const identities: Record<string, number> = {};

  const keysUnder = async (prefix: string): Promise<string[]> =>
    (await localAdmin.getAll().prefix(prefix).keys()).sort();
  const rejected = async (cluster: string, reason?: string): Promise<number> => {
    const values =
      (await registry.getSingleMetric('clustermesh_kvstoremesh_rejected_records_total')?.get())?.values ?? [];
    return values
      .filter((v) => v.labels.cluster === cluster && (reason === undefined || v.labels.reason === reason))
      .reduce((sum, v) => sum + v.value, 0);
  };
  const gauge = async (name: string, cluster: string): Promise<number | undefined> =>
    ((await registry.getSingleMetric(name)?.get())?.values ?? []).find((v) => v.labels.cluster === cluster)
      ?.value;
  /** What the datapath would be built from, without the link (which differs by design). */
  const records = (views: RemoteClusterView[]) =>
    views.map((v) => ({
      name: v.name,
      id: v.id,
      services: [...v.services].sort((a, b) => a.name.localeCompare(b.name)),
      nodes: v.nodes,
      identities: [...v.identities].sort(),
      ipcache: v.ipcache,
    }));
  const ready = (remotes: RemoteClusters, names: string[]) => () =>
    names.every((name) => remotes.status().find((s) => s.name === name)?.ready === true);
  const remotesOf = (dir: string) =>
    new RemoteClusters({
      localCluster: LOCAL,
      source: new DirectoryPeerSource({ dir, log, debounceMs: 20 }),
      localAddresses: () => WEST_ADDRESSES,
      log,
      metrics: createMetricsRegistry(),
      backoff,
      dialTimeoutMs: 2_000,
    });

  beforeAll(async () => {
    [local, east, north] = await startAll(
      () => EtcdHarness.start(),
      () => PeerEtcd.start(EAST.name),
      () => PeerEtcd.start(NORTH.name),
    );
    localAdmin = createEtcdClient(await local.clientConfig(ADMIN_USER));
    await bootstrapEtcd(localAdmin, { cluster: LOCAL.name });
    await localAdmin.put(clusterConfigKey(LOCAL.name)).value(localConfig);
    for (const [peer, ref] of [
      [east, EAST],
      [north, NORTH],
    ] as const) {
      await peer.publishConfig(ref.name, ref.id);
      await peer.putService(service(ref.name, ref.id, `svc-${ref.name}-1`, `10.1${ref.id}.1.5`));
      await peer.putService(service(ref.name, ref.id, `svc-${ref.name}-2`, `10.1${ref.id}.1.6`));
      await peer.putNode(node(ref.name, ref.id, `${ref.name}-worker`, workerIP(ref.id), podCidr(ref.id)));
      identities[ref.name] = await peer.putPod(ref.name, ref.id, 7, `10.1${ref.id}.1.7`, workerIP(ref.id));
      await peer.putCanaries(ref.name);
    }
    proxy = await CuttableProxy.start('127.0.0.1', east.etcd.clientPort);
    [meshDir, directDir, cachedDir] = await Promise.all(
      ['mesh', 'direct', 'cached'].map((what) => mkdtemp(join(tmpdir(), `kvstoremesh-${what}-`))),
    );
    const reader = await local.clientCert(LOCAL_READER_USER);
    for (const [peer, ref, endpoints] of [
      [east, EAST, [proxy.endpoint]],
      [north, NORTH, north.etcd.endpoints],
    ] as const) {
      await writePeerEntry(
        meshDir,
        ref.name,
        [...endpoints],
        peer.etcd.ca.certPem,
        await agentCert(peer.etcd),
      );
      await writePeerEntry(
        directDir,
        ref.name,
        peer.etcd.endpoints,
        peer.etcd.ca.certPem,
        await agentCert(peer.etcd),
      );
      // Cached mode: every peer entry names the local etcd and the local reader, as Cilium's
      // kvstoremesh secret does.
      await writePeerEntry(cachedDir, ref.name, local.endpoints, local.ca.certPem, reader);
    }
    registry = createMetricsRegistry();
    mesh = new KVStoreMesh({
      cluster: LOCAL,
      etcd: await local.clientConfig(ADMIN_USER),
      source: new DirectoryPeerSource({ dir: meshDir, log, debounceMs: 20 }),
      local: localAddresses,
      log,
      registry,
      cacheTtlMs: CACHE_TTL_MS,
      backoff,
      dialTimeoutMs: 2_000,
    });
    await mesh.start();
    direct = remotesOf(directDir);
    cached = remotesOf(cachedDir);
    await Promise.all([direct.start(), cached.start()]);
  });

  afterAll(async () => {
    // the etcd processes and directories go even when stopping the daemons under test fails
    try {
      await Promise.all([direct?.stop(), cached?.stop(), mesh?.stop()]);
    } finally {
      localAdmin?.close();
      await proxy?.close();
      await Promise.all([local?.stop(), east?.stop(), north?.stop()]);
      for (const dir of [meshDir, directDir, cachedDir])
        if (dir) await rm(dir, { recursive: true, force: true });
    }
  });

  it('writes no service, node or ipcache entry, nor their canaries, until the local addresses are known', async () => {
    for (const ref of [EAST, NORTH])
      await waitFor(`the identities of ${ref.name} cached (they point at no address)`, async () =>
        (await keysUnder(syncedClusterPrefix(ref.name))).includes(
          `cilium/synced/${ref.name}/cilium/cache/identities/v1`,
        ),
      );
    expect(await keysUnder(syncedClusterPrefix(EAST.name))).toEqual([
      `cilium/synced/${EAST.name}/cilium/cache/identities/v1`,
    ]);
    for (const ref of [EAST, NORTH])
      for (const prefix of [
        cachedServicesClusterPrefix,
        cachedNodesClusterPrefix,
        cachedIpcacheClusterPrefix,
      ])
        expect(await keysUnder(prefix(ref.name))).toEqual([]);
    expect(mesh.status().map((s) => s.synced)).toEqual([false, false]);
    localAddresses.set(WEST_ADDRESSES);
  });

  it('mirrors both peers under cilium/cache/ with their canaries and a cached config', async () => {
    await mesh.whenSynced();
    for (const ref of [EAST, NORTH]) {
      expect(await keysUnder(cachedServicesClusterPrefix(ref.name))).toEqual([
        `cilium/cache/services/v1/${ref.name}/default/svc-${ref.name}-1`,
        `cilium/cache/services/v1/${ref.name}/default/svc-${ref.name}-2`,
      ]);
      expect(await keysUnder(`cilium/cache/nodes/v1/${ref.name}/`)).toEqual([
        `cilium/cache/nodes/v1/${ref.name}/${ref.name}-worker`,
      ]);
      expect(await keysUnder(cachedIdentityIdPrefix(ref.name))).toEqual([
        `cilium/cache/identities/v1/${ref.name}/id/${identities[ref.name]}`,
      ]);
      expect(await keysUnder(cachedIpcacheClusterPrefix(ref.name))).toEqual([
        `cilium/cache/ip/v1/${ref.name}/10.1${ref.id}.1.7`,
      ]);
      expect(await keysUnder(syncedClusterPrefix(ref.name))).toEqual(
        ['identities', 'ip', 'nodes', 'services'].map(
          (kind) => `cilium/synced/${ref.name}/cilium/cache/${kind}/v1`,
        ),
      );
      const config = decodeClusterConfig(
        'config',
        (await localAdmin.get(clusterConfigKey(ref.name)).buffer())!,
      );
      expect(config).toEqual({
        ok: true,
        value: {
          id: ref.id,
          capabilities: { syncedCanaries: true, maxConnectedClusters: 255, cached: true },
        },
      });
    }
    // the bytes are the peer's own
    const key = serviceKey(EAST.name, 'default', `svc-${EAST.name}-1`);
    expect(await localAdmin.get(`${CACHE_PREFIX}/${key.slice('cilium/state/'.length)}`).string()).toBe(
      await east.admin.get(key).string(),
    );
    expect(mesh.status().map((s) => [s.name, s.connected, s.synced])).toEqual([
      [EAST.name, true, true],
      [NORTH.name, true, true],
    ]);
  });

  it('gives an agent reading the cache the same records as an agent reading the peers', async () => {
    await waitFor(
      'both agents ready for both peers',
      () => ready(direct, [EAST.name, NORTH.name])() && ready(cached, [EAST.name, NORTH.name])(),
    );
    expect(records(cached.views())).toEqual(records(direct.views()));
    expect(records(cached.views()).map((v) => [v.name, v.services.length, v.identities.length])).toEqual([
      [EAST.name, 2, 1],
      [NORTH.name, 2, 1],
    ]);

    await east.putService(service(EAST.name, EAST.id, 'svc-east-3', `10.1${EAST.id}.1.9`));
    await east.admin.delete().key(serviceKey(EAST.name, 'default', 'svc-east-2'));
    const names = (remotes: RemoteClusters) =>
      remotes
        .views()
        .find((v) => v.name === EAST.name)!
        .services.map((s) => s.name)
        .sort()
        .join(',');
    await waitFor('the change through the cache', () => names(cached) === 'svc-east-1,svc-east-3');
    await waitFor('the change directly', () => names(direct) === 'svc-east-1,svc-east-3');
    expect(records(cached.views())).toEqual(records(direct.views()));
  });

  it('refuses and counts invalid records: they never reach the cache', async () => {
    const before = await rejected(EAST.name);
    const bad: Array<[string, string]> = [
      [
        serviceKey(EAST.name, 'default', 'wrong-id'),
        encodeClusterService(service(EAST.name, NORTH.id, 'wrong-id')),
      ],
      [
        serviceKey(EAST.name, 'default', 'impostor'),
        encodeClusterService(service(NORTH.name, EAST.id, 'impostor')),
      ],
      [serviceKey(EAST.name, 'default', 'garbage'), '{"cluster":'],
    ];
    for (const [key, value] of bad) await east.admin.put(key).value(value);
    await east.putService(service(EAST.name, EAST.id, 'svc-marker'));

    await waitFor('marker cached', async () =>
      (await keysUnder(cachedServicesClusterPrefix(EAST.name))).some((k) => k.endsWith('/svc-marker')),
    );
    await waitFor(
      'every invalid record counted',
      async () => (await rejected(EAST.name)) - before === bad.length,
    );
    expect(
      await Promise.all(
        ['cluster-id', 'key-mismatch', 'malformed'].map((reason) => rejected(EAST.name, reason)),
      ),
    ).toEqual([1, 1, 1]);
    expect((await keysUnder(cachedServicesClusterPrefix(EAST.name))).map((k) => k.split('/').pop())).toEqual([
      'svc-east-1',
      'svc-east-3',
      'svc-marker',
    ]);
    expect(mesh.status().find((s) => s.name === EAST.name)).toMatchObject({
      rejected: bad.length,
      synced: true,
    });
    for (const [key] of bad) await east.admin.delete().key(key);
  });

  /** The cached value of one of east's services (decoded), or null. */
  const cachedService = async (name: string) => {
    const bytes = await localAdmin.get(`${cachedServicesClusterPrefix(EAST.name)}default/${name}`).buffer();
    if (!bytes) return null;
    const decoded = decodeClusterService('cached', bytes);
    if (!decoded.ok) throw new Error(decoded.reason);
    return decoded.value;
  };
  const cachedBackends = async (name: string) =>
    Object.keys((await cachedService(name))?.backends ?? {}).sort();
  const cacheHolds = async (key: string) => (await localAdmin.get(key).string()) !== null;
  const counted = async (cluster: string, reasons: string[]) =>
    Object.fromEntries(await Promise.all(reasons.map(async (r) => [r, await rejected(cluster, r)] as const)));
  const byReason = (reasons: string[]) =>
    reasons.reduce<Record<string, number>>((t, r) => ({ ...t, [r]: (t[r] ?? 0) + 1 }), {});
  const ipcacheEntry = (ip: string, hostIP: string) =>
    encodeIPCacheEntry({
      IP: ip,
      Mask: null,
      HostIP: hostIP,
      ID: (EAST.id << IDENTITY_CLUSTER_SHIFT) | 99,
      K8sNamespace: 'default',
      K8sPodName: 'hostile',
      NamedPorts: null,
    });

  it('refuses and counts what a peer does not own, as the agents would: none of it reaches the cache', async () => {
    const reasons = ['not-owned', 'local-pod-cidr', 'local-node-ip', 'other-peer'];
    const before = {
      east: await counted(EAST.name, reasons),
      north: await rejected(NORTH.name),
      status: mesh.status()[0].rejected,
    };
    // North holds 10.15.0.0/24 first; east claiming it later is the taker.
    await north.putNode(node(NORTH.name, NORTH.id, 'north-extra', '10.99.0.33', '10.15.0.0/24'));
    await waitFor('north-extra cached', () =>
      cacheHolds(`${cachedNodesClusterPrefix(NORTH.name)}north-extra`),
    );
    await waitFor('north-extra held by north in both agents (each decides when its views are read)', () =>
      [cached, direct].every((remotes) =>
        remotes
          .views()
          .find((v) => v.name === NORTH.name)
          ?.nodes.some((n) => n.Name === 'north-extra'),
      ),
    );
    const hostile: Array<[string, string, string]> = [
      // [what, key, value]
      [
        'a service with one backend of its own and one outside its claims, one in north’s',
        serviceKey(EAST.name, 'default', 'hostile'),
        encodeClusterService({
          ...service(EAST.name, EAST.id, 'hostile', '10.12.1.20'),
          backends: Object.fromEntries(
            ['10.12.1.20', '10.14.0.5', '10.15.0.9'].map((ip) => [
              ip,
              { http: { Protocol: 'TCP', Port: 8080 } },
            ]),
          ),
        }),
      ],
      [
        'a node claiming a pod CIDR of west',
        nodeKey(EAST.name, 'forged-pod-cidr'),
        JSON.stringify(node(EAST.name, EAST.id, 'forged-pod-cidr', '10.99.0.40', '10.101.1.0/24')),
      ],
      [
        'a node contesting north’s CIDR',
        nodeKey(EAST.name, 'east-extra'),
        JSON.stringify(node(EAST.name, EAST.id, 'east-extra', '10.99.0.42', '10.15.0.0/24')),
      ],
      [
        'an ipcache entry for a node IP of west',
        ipcacheKey('10.99.0.11'),
        ipcacheEntry('10.99.0.11', workerIP(EAST.id)),
      ],
    ];
    for (const [, key, value] of hostile) await east.admin.put(key).value(value);
    const expected = byReason(['not-owned', 'other-peer', 'local-pod-cidr', 'other-peer', 'local-node-ip']);
    await waitFor('every refusal counted', async () => {
      const now = await counted(EAST.name, reasons);
      return reasons.every((r) => now[r] - before.east[r] === (expected[r] ?? 0));
    });
    // a decision is written kind by kind (a SyncStore each): wait for the writes of this one
    await waitFor(
      'the hostile service cached with its own backend only, north-extra cached',
      async () =>
        (await cachedBackends('hostile')).join() === '10.12.1.20' &&
        (await cacheHolds(`${cachedNodesClusterPrefix(NORTH.name)}north-extra`)),
    );
    for (const key of [
      `${cachedNodesClusterPrefix(EAST.name)}forged-pod-cidr`,
      `${cachedNodesClusterPrefix(EAST.name)}east-extra`,
      `${cachedIpcacheClusterPrefix(EAST.name)}10.99.0.11`,
    ])
      expect([key, await cacheHolds(key)]).toEqual([key, false]);
    expect(await rejected(NORTH.name)).toBe(before.north);
    expect(mesh.status()[0].rejected - before.status).toBe(5);
    // What an agent reading the cache gets is what an agent reading east directly admits.
    await waitFor('both agents see the hostile service with its own backend only', () =>
      [cached, direct].every(
        (remotes) =>
          Object.keys(
            remotes
              .views()
              .find((v) => v.name === EAST.name)
              ?.services.find((svc) => svc.name === 'hostile')?.backends ?? {},
          ).join() === '10.12.1.20',
      ),
    );
    expect(records(cached.views())).toEqual(records(direct.views()));
    // Refusals are counted once per appearance: an unrelated change decides again and counts nothing.
    await east.putService(service(EAST.name, EAST.id, 'svc-after', '10.12.1.30'));
    await waitFor('svc-after cached', async () => (await cachedBackends('svc-after')).length === 1);
    expect(await counted(EAST.name, reasons)).toEqual(
      Object.fromEntries(reasons.map((r) => [r, before.east[r] + (expected[r] ?? 0)])),
    );
    for (const [, key] of hostile) await east.admin.delete().key(key);
    await east.admin.delete().key(serviceKey(EAST.name, 'default', 'svc-after'));
    await north.admin.delete().key(nodeKey(NORTH.name, 'north-extra'));
    await waitFor(
      'hostile service and north-extra gone from the cache',
      async () =>
        (await cachedService('hostile')) === null &&
        !(await cacheHolds(`${cachedNodesClusterPrefix(NORTH.name)}north-extra`)),
    );
  });

  it('admits a backend refused for want of its node record once the node arrives, and withdraws it when the node goes', async () => {
    const notOwned = await rejected(EAST.name, 'not-owned');
    await east.putService(service(EAST.name, EAST.id, 'late', '10.16.0.5'));
    await waitFor(
      'late refused and cached without its backend',
      async () =>
        (await rejected(EAST.name, 'not-owned')) === notOwned + 1 && (await cachedService('late')) !== null,
    );
    expect(await cachedBackends('late')).toEqual([]);

    await east.putNode(node(EAST.name, EAST.id, 'east-late', '10.99.0.41', '10.16.0.0/24'));
    await waitFor(
      'the backend admitted with its node',
      async () =>
        (await cachedBackends('late')).join() === '10.16.0.5' &&
        (await cacheHolds(`${cachedNodesClusterPrefix(EAST.name)}east-late`)),
    );
    // the bytes of an admitted record are the peer's own
    const key = serviceKey(EAST.name, 'default', 'late');
    expect(await localAdmin.get(`${CACHE_PREFIX}/${key.slice('cilium/state/'.length)}`).string()).toBe(
      await east.admin.get(key).string(),
    );

    await east.admin.delete().key(nodeKey(EAST.name, 'east-late'));
    await waitFor(
      'the backend withdrawn with its node',
      async () =>
        (await cachedBackends('late')).length === 0 &&
        !(await cacheHolds(`${cachedNodesClusterPrefix(EAST.name)}east-late`)),
    );
    expect(await cachedService('late')).not.toBeNull();
    expect(await rejected(EAST.name, 'not-owned')).toBe(notOwned + 2); // refused again: it appeared again
    await east.admin.delete().key(key);
    await waitFor('late gone from the cache', async () => (await cachedService('late')) === null);
  });

  it('decides again when the local addresses change: what they now hold leaves the cache, and comes back after', async () => {
    const before = await rejected(EAST.name, 'local-cluster-ip');
    const worker = `${cachedNodesClusterPrefix(EAST.name)}${EAST.name}-worker`;
    // A local ClusterIP inside east's pod CIDR: east's worker may no longer claim it, nor its backends.
    localAddresses.set({ ...WEST_ADDRESSES, clusterIPs: [...WEST_ADDRESSES.clusterIPs, '10.12.1.5'] });
    await waitFor(
      "east's worker and its backends withdrawn",
      async () => !(await cacheHolds(worker)) && (await cachedBackends('svc-east-1')).length === 0,
    );
    expect(await rejected(EAST.name, 'local-cluster-ip')).toBeGreaterThan(before);
    expect(await cacheHolds(`${cachedNodesClusterPrefix(NORTH.name)}${NORTH.name}-worker`)).toBe(true);
    localAddresses.set(WEST_ADDRESSES);
    await waitFor(
      'both back',
      async () => (await cacheHolds(worker)) && (await cachedBackends('svc-east-1')).join() === '10.12.1.5',
    );
  });

  it('serves the agents read-only: the local reader can read the cache and write nothing', async () => {
    const reader = createEtcdClient(await local.clientConfig(LOCAL_READER_USER));
    try {
      expect((await reader.getAll().prefix(cachedServicesClusterPrefix(NORTH.name)).keys()).length).toBe(2);
      await expect(
        reader
          .put(serviceKey(NORTH.name, 'default', 'x'))
          .value('{}')
          .exec(),
      ).rejects.toThrow(/permission denied/);
      await expect(
        reader
          .put(`${cachedServicesClusterPrefix(NORTH.name)}default/x`)
          .value('{}')
          .exec(),
      ).rejects.toThrow(/permission denied/);
      await expect(reader.getAll().prefix(`${SERVICES_PREFIX}/`).keys()).rejects.toThrow(/permission denied/);
    } finally {
      reader.close();
    }
  });

  it("drops an unreachable peer's cache after the TTL and refills it when the peer is back", async () => {
    await proxy.cut();
    await waitFor(
      'east marked disconnected',
      () => mesh.status().find((s) => s.name === EAST.name)?.connected === false,
    );
    expect(await gauge('clustermesh_kvstoremesh_peer_connected', EAST.name)).toBe(0);
    expect(await gauge('clustermesh_kvstoremesh_peer_connected', NORTH.name)).toBe(1);
    await waitFor(
      'east cache and canaries dropped after the TTL',
      async () =>
        (await keysUnder(`${CACHE_PREFIX}/services/v1/${EAST.name}/`)).length === 0 &&
        (await keysUnder(syncedClusterPrefix(EAST.name))).length === 0,
    );
    // the cached config stays: the peer is still configured
    expect(await localAdmin.get(clusterConfigKey(EAST.name)).string()).not.toBeNull();
    await waitFor(
      'the cached agent lets east go',
      () => (cached.views().find((v) => v.name === EAST.name)?.services.length ?? 0) === 0,
    );
    expect(await keysUnder(cachedServicesClusterPrefix(NORTH.name))).toHaveLength(2);

    await proxy.restore();
    await waitFor(
      'east cached again',
      async () => (await keysUnder(cachedServicesClusterPrefix(EAST.name))).length === 3,
    );
    await mesh.whenSynced();
    expect(await gauge('clustermesh_kvstoremesh_peer_connected', EAST.name)).toBe(1);
    await waitFor(
      'the cached agent has east again',
      () => (cached.views().find((v) => v.name === EAST.name)?.services.length ?? 0) === 3,
    );
  });

  it("drops a silent peer's cache when the TTL runs out, without waiting on the dead connection", async () => {
    await mesh.whenSynced();
    // no reset: only the keepalives (lib/kvstore/etcd.ts) notice, and every reconnect hangs in its TLS handshake
    proxy.silence();
    await waitFor(
      'east marked disconnected by the keepalives',
      () => mesh.status().find((s) => s.name === EAST.name)?.connected === false,
      KEEPALIVE_NOTICE_MS,
    );
    await waitFor(
      'east cache and canaries dropped when the TTL runs out',
      async () =>
        (await keysUnder(`${CACHE_PREFIX}/services/v1/${EAST.name}/`)).length === 0 &&
        (await keysUnder(syncedClusterPrefix(EAST.name))).length === 0,
      CACHE_TTL_MS + DROP_MARGIN_MS,
    );
    await proxy.restore();
    await waitFor(
      'east cached again',
      async () => (await keysUnder(cachedServicesClusterPrefix(EAST.name))).length === 3,
    );
    await mesh.whenSynced();
  }, 60_000);

  it("counts a peer's cached records through a new session: never 0 while the cache holds them", async () => {
    const northStatus = () => mesh.status().find((s) => s.name === NORTH.name)!;
    await mesh.whenSynced();
    const before = northStatus().records;
    expect(before.services).toBe(2);
    let smallest = before.services;
    let resyncing = false;
    const sampler = setInterval(() => {
      const status = northStatus();
      smallest = Math.min(smallest, status.records.services);
      resyncing ||= !status.synced;
    }, 1);
    try {
      // a rotated client certificate: a new session, the cache kept and resynced in place
      await writePeerEntry(meshDir, NORTH.name, north.etcd.endpoints, north.etcd.ca.certPem, await rotatedAgentCert(north.etcd));
      await waitFor('north resyncing', () => resyncing);
      await waitFor('north synced again', () => northStatus().synced);
    } finally {
      clearInterval(sampler);
    }
    expect(smallest).toBe(2);
    expect(northStatus().records).toEqual(before);
  });

  it("deletes a removed peer's cache, canaries and cached config", async () => {
    await removePeerEntry(meshDir, NORTH.name);
    // the cache, then the canaries, then the cached config (clustermesh-apiserver/kvstoremesh/peer-mirror.ts deletePeerCache)
    await waitFor(
      'north cache, canaries and cached config deleted',
      async () =>
        (await keysUnder(`${CACHE_PREFIX}/`)).every((key) => !key.includes(`/${NORTH.name}/`)) &&
        (await keysUnder(syncedClusterPrefix(NORTH.name))).length === 0 &&
        (await localAdmin.get(clusterConfigKey(NORTH.name)).string()) === null,
    );
    expect(mesh.status().map((s) => s.name)).toEqual([EAST.name]);
    // east is untouched
    expect(
      await localAdmin.get(syncedCanaryKey(EAST.name, 'cilium/cache/services/v1')).string(),
    ).not.toBeNull();
  });

  it('keeps the cache across its own restart, and drops at start the cache of a peer removed meanwhile', async () => {
    await mesh.stop();
    expect(await keysUnder(cachedServicesClusterPrefix(EAST.name))).toHaveLength(3);
    await removePeerEntry(meshDir, EAST.name);
    mesh = new KVStoreMesh({
      cluster: LOCAL,
      etcd: await local.clientConfig(ADMIN_USER),
      source: new DirectoryPeerSource({ dir: meshDir, log, debounceMs: 20 }),
      local: localAddresses,
      log,
      registry: createMetricsRegistry(),
      backoff,
    });
    await mesh.start();
    expect(await keysUnder(`${CACHE_PREFIX}/`)).toEqual([]);
    expect(await keysUnder(syncedClusterPrefix(EAST.name))).toEqual([]);
    expect(await localAdmin.get(clusterConfigKey(EAST.name)).string()).toBeNull();
    // the local cluster's own config is not a cache
    expect(await localAdmin.get(clusterConfigKey(LOCAL.name)).string()).toBe(localConfig);
  });
});
