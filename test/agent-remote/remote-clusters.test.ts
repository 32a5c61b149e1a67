/**
 * RemoteClusters against two real etcds (TLS, client-cert auth, bootstrapped as the apiserver
 * does), peers configured through a real --clustermesh-config directory. The tests run in order
 * and share the peers: each one starts from what the previous left.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import { DirectoryPeerSource } from '../../lib/remotes/config-source.js';
import {
  RemoteClusters,
  type RemoteClusterStatus,
  type RemoteClusterView,
} from '../../agent/remote/remote-clusters.js';
import { encodeClusterService } from '../../lib/kvstore/codecs.js';
import { identityKey, nodeKey, serviceKey } from '../../lib/kvstore/keys.js';
import type { LocalAddresses } from '../../lib/kvstore/ownership.js';
import { createLogger } from '../../lib/log.js';
import { createMetricsRegistry } from '../../lib/metrics.js';
import { createCA, issueClientCert } from '../../lib/pki.js';
import { CuttableProxy, KEEPALIVE_NOTICE_MS, waitFor } from '../kvstore/helpers.js';
import { startAll } from '../harness/start-all.js';
import { LOCAL, PeerEtcd, agentCert, node, removePeerEntry, service, writePeerEntry } from './helpers.js';

const EAST = { name: 'east', id: 2 };
const NORTH = { name: 'north', id: 3 };
/** the local cluster (west): what no peer may publish */
const LOCAL_ADDRESSES: LocalAddresses = {
  podCidrs: ['10.101.0.0/16'],
  serviceCidrs: ['10.111.0.0/16'],
  clusterIPs: ['10.111.0.20'],
  nodeIPs: ['10.99.0.11'],
};
/** a removal's own work: no wait on the peer (a reconnect to a silent one times out after ~20 s) */
const REMOVAL_MS = 3_000;
const log = createLogger('agent-remote-test', { LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent' });

describe('RemoteClusters with two real etcds', () => {
  let east: PeerEtcd;
  let north: PeerEtcd;
  let proxy: CuttableProxy;
  let dir: string;
  let registry: Registry;
  let remotes: RemoteClusters;

  const view = (name: string): RemoteClusterView | undefined => remotes.views().find((v) => v.name === name);
  const status = (name: string): RemoteClusterStatus | undefined =>
    remotes.status().find((s) => s.name === name);
  const serviceNames = (name: string): string[] => (view(name)?.services ?? []).map((s) => s.name).sort();
  const metric = async (name: string, labels: Record<string, string>): Promise<number> => {
    const values = (await registry.getSingleMetric(name)?.get())?.values ?? [];
    return values
      .filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
      .reduce((sum, v) => sum + v.value, 0);
  };
  const deletes = (cluster: string) =>
    metric('clustermesh_agent_remote_record_events_total', { cluster, kind: 'services', op: 'delete' });
  /** The fewest services of `cluster` any change notification showed, from now until stop(). */
  const trackSmallest = (cluster: string) => {
    let smallest = serviceNames(cluster).length;
    const stop = remotes.onChange(() => (smallest = Math.min(smallest, serviceNames(cluster).length)));
    return { smallest: () => smallest, stop };
  };
  const writeEntry = async (peer: PeerEtcd, name: string, endpoints = peer.etcd.endpoints) =>
    writePeerEntry(dir, name, endpoints, peer.etcd.ca.certPem, await agentCert(peer.etcd));

  beforeAll(async () => {
    [east, north] = await startAll(() => PeerEtcd.start(EAST.name), () => PeerEtcd.start(NORTH.name));
    await east.publishConfig(EAST.name, EAST.id);
    await north.publishConfig(NORTH.name, NORTH.id);
    proxy = await CuttableProxy.start('127.0.0.1', east.etcd.clientPort);
    dir = await mkdtemp(join(tmpdir(), 'agent-remote-'));
    registry = createMetricsRegistry();
    remotes = new RemoteClusters({
      localCluster: LOCAL,
      source: new DirectoryPeerSource({ dir, log, debounceMs: 20 }),
      log,
      metrics: registry,
      backoff: { minTimeoutMs: 20, maxTimeoutMs: 300 },
      dialTimeoutMs: 2_000,
      localAddresses: () => LOCAL_ADDRESSES,
    });
    await remotes.start();
  });

  afterAll(async () => {
    // the etcd processes and the directory go even when stopping the remotes under test fails
    try {
      await remotes?.stop();
    } finally {
      await proxy?.close();
      await Promise.all([east?.stop(), north?.stop()]);
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  });

  it('connects a peer added at run time; its records show only once its canaries are written', async () => {
    await east.putService(service(EAST.name, EAST.id, 'svc-a'));
    await east.putService(service(EAST.name, EAST.id, 'svc-b', '10.12.1.6'));
    await east.putNode(node(EAST.name, EAST.id, 'east-worker', '10.99.0.21', '10.12.1.0/24'));
    const identity = await east.putPod(EAST.name, EAST.id, 7, '10.12.1.7', '10.99.0.21');
    await writeEntry(east, EAST.name, [proxy.endpoint]);

    await waitFor('east connected with its records read', () => {
      const s = status(EAST.name);
      return !!s && s.connected && s.id === EAST.id && s.counts.services === 2 && s.counts.ipcache === 1;
    });
    expect(view(EAST.name)).toMatchObject({
      id: EAST.id,
      link: { state: 'connected' },
      services: [],
      nodes: [],
    });
    expect(status(EAST.name)).toMatchObject({ ready: false, synced: { services: false } });

    await east.putCanaries(EAST.name);
    await waitFor('east ready', () => status(EAST.name)?.ready === true);
    const v = view(EAST.name)!;
    expect(serviceNames(EAST.name)).toEqual(['svc-a', 'svc-b']);
    expect(v.nodes.map((n) => n.Name)).toEqual(['east-worker']);
    expect(v.identities.get(identity)).toBe('k8s:app=app7;k8s:io.cilium.k8s.policy.cluster=east;');
    expect(v.ipcache).toEqual([expect.objectContaining({ IP: '10.12.1.7', ID: identity })]);
    expect(v.services.map((svc) => Object.keys(svc.backends))).toEqual([['10.12.1.5'], ['10.12.1.6']]);
    expect(status(EAST.name)!.rejected).toBe(0);
  });

  it('refuses a peer whose cluster ID another peer or the local cluster has, and keeps the others', async () => {
    await north.putNode(node(NORTH.name, NORTH.id, 'north-worker', '10.99.0.31', '10.13.1.0/24'));
    await north.putService(service(NORTH.name, NORTH.id, 'svc-n', '10.13.1.5'));
    await north.putCanaries(NORTH.name);
    await north.hostAlso('south');
    await north.publishConfig('south', EAST.id);
    await writeEntry(north, NORTH.name);
    await writeEntry(north, 'south');

    await waitFor('north ready', () => status(NORTH.name)?.ready === true);
    await waitFor('south refused for east', () =>
      /refused: cluster ID 2 of "south" is already used by the peer "east"/.test(
        status('south')?.lastError ?? '',
      ),
    );
    expect(status('south')).toMatchObject({ id: null, connected: false, ready: false });
    expect(remotes.views().map((v) => v.name)).toEqual([EAST.name, NORTH.name]);

    await north.publishConfig('south', LOCAL.id);
    await waitFor('south refused for the local cluster', () =>
      /cluster ID 1 of "south" is the ID of the local cluster "west"/.test(status('south')?.lastError ?? ''),
    );
    expect(serviceNames(EAST.name)).toEqual(['svc-a', 'svc-b']);
    expect(serviceNames(NORTH.name)).toEqual(['svc-n']);

    await removePeerEntry(dir, 'south');
    await waitFor('south gone', () => status('south') === undefined);
  });

  it('rejects hostile records, counts them by reason, and changes nothing else', async () => {
    const eastKey = (name: string) => serviceKey(EAST.name, 'default', name);
    const hostile: Array<[string, string | Buffer, string]> = [
      [
        eastKey('impostor'),
        encodeClusterService({ ...service(NORTH.name, EAST.id, 'impostor') }),
        'key-mismatch',
      ],
      [eastKey('wrong-id'), encodeClusterService(service(EAST.name, NORTH.id, 'wrong-id')), 'cluster-id'],
      [
        eastKey('bad-address'),
        encodeClusterService(service(EAST.name, EAST.id, 'bad-address', '10.0.0.300')),
        'invalid-address',
      ],
      [eastKey('garbage'), Buffer.concat([Buffer.from([0xff, 0xfe]), randomBytes(64)]), 'malformed'],
      [
        eastKey('huge'),
        encodeClusterService({
          ...service(EAST.name, EAST.id, 'huge'),
          labels: { big: 'x'.repeat(1 << 20) },
        }),
        'too-large',
      ],
      [
        identityKey((EAST.id << 16) | 9),
        'k8s:app=x;k8s:io.cilium.k8s.policy.cluster=north;',
        'foreign-cluster',
      ],
    ];
    const before = status(EAST.name)!.rejected;
    for (const [key, value] of hostile) await east.admin.put(key).value(value);
    // A key naming another cluster lies outside the prefix this peer's store may read at all.
    await east.admin
      .put(serviceKey(NORTH.name, 'default', 'elsewhere'))
      .value(encodeClusterService(service(NORTH.name, NORTH.id, 'elsewhere')));
    await east.putService(service(EAST.name, EAST.id, 'svc-marker'));

    await waitFor('marker seen', () => serviceNames(EAST.name).includes('svc-marker'));
    await waitFor(
      'all hostile records rejected',
      () => status(EAST.name)!.rejected - before === hostile.length,
    );
    for (const reason of new Set(hostile.map(([, , r]) => r))) {
      const expected = hostile.filter(([, , r]) => r === reason).length;
      expect([
        reason,
        await metric('clustermesh_agent_rejected_records_total', { cluster: EAST.name, reason }),
      ]).toEqual([reason, expected]);
    }
    expect(serviceNames(EAST.name)).toEqual(['svc-a', 'svc-b', 'svc-marker']);
    expect(status(EAST.name)).toMatchObject({ connected: true, ready: true });
    expect(serviceNames(NORTH.name)).toEqual(['svc-n']);
    for (const [key] of hostile) await east.admin.delete().key(key);
    await east.admin.delete().key(serviceKey(NORTH.name, 'default', 'elsewhere'));
  });

  it('admits only addresses the peer owns: a backend waits for its node record and leaves with it', async () => {
    const backends = (name: string) =>
      Object.keys(view(EAST.name)?.services.find((svc) => svc.name === name)?.backends ?? {}).sort();
    const refused = (reason: string) =>
      metric('clustermesh_agent_rejected_records_total', { cluster: EAST.name, reason });
    const before = {
      rejected: status(EAST.name)!.rejected,
      loopback: await refused('loopback'),
      notOwned: await refused('not-owned'),
      localPod: await refused('local-pod-cidr'),
      localIp: await refused('local-cluster-ip'),
      localNode: await refused('local-node-ip'),
    };
    const forged = {
      ...service(EAST.name, EAST.id, 'svc-forged'),
      backends: Object.fromEntries(
        ['10.12.1.8', '127.0.0.1', '10.101.1.5', '10.111.0.20', '10.12.2.8'].map((a) => [a, { http: { Protocol: 'TCP' as const, Port: 22 } }]),
      ),
    };
    await east.putService(forged);
    // The node claiming the local cluster's node IP is refused whole: its pod CIDR owns nothing.
    await east.putNode(node(EAST.name, EAST.id, 'east-impostor', '10.99.0.11', '10.12.3.0/24'));
    await waitFor('the forged service seen', () => backends('svc-forged').length > 0);
    expect(backends('svc-forged')).toEqual(['10.12.1.8']);
    await waitFor('its refusals counted', async () => status(EAST.name)!.rejected - before.rejected === 5);
    expect(view(EAST.name)!.nodes.map((n) => n.Name)).toEqual(['east-worker']);
    expect([
      (await refused('loopback')) - before.loopback,
      (await refused('local-pod-cidr')) - before.localPod,
      (await refused('local-cluster-ip')) - before.localIp,
      (await refused('local-node-ip')) - before.localNode,
      (await refused('not-owned')) - before.notOwned,
    ]).toEqual([1, 1, 1, 1, 1]);

    // 10.12.2.8 is nobody's until a node of east claims 10.12.2.0/24, and again when it goes.
    await east.putNode(node(EAST.name, EAST.id, 'east-worker2', '10.99.0.22', '10.12.2.0/24'));
    await waitFor('the backend admitted with its node', () => backends('svc-forged').includes('10.12.2.8'));
    expect(backends('svc-forged')).toEqual(['10.12.1.8', '10.12.2.8']);
    await east.admin.delete().key(nodeKey(EAST.name, 'east-worker2'));
    await waitFor('the backend withdrawn with its node', () => !backends('svc-forged').includes('10.12.2.8'));
    await waitFor('counted again', async () => (await refused('not-owned')) - before.notOwned === 2);
    // Nothing else of the peer is counted twice however often the views are read.
    remotes.views();
    expect(status(EAST.name)!.rejected - before.rejected).toBe(6);

    await east.admin.delete().key(serviceKey(EAST.name, 'default', 'svc-forged'));
    await east.admin.delete().key(nodeKey(EAST.name, 'east-impostor'));
    await waitFor('forged records gone', () => backends('svc-forged').length === 0);
  });

  it('keeps the last records through an etcd SIGKILL and resyncs with zero deletes', async () => {
    const names = serviceNames(EAST.name);
    const deletesBefore = await deletes(EAST.name);
    const failuresBefore = status(EAST.name)!.failures;
    const tracker = trackSmallest(EAST.name);
    try {
      await east.etcd.kill();
      await waitFor('east disconnected', () => view(EAST.name)?.link.state === 'disconnected');
      const link = view(EAST.name)!.link;
      expect(link.state === 'disconnected' && link.sinceMs).toBeGreaterThan(Date.now() - 60_000);
      expect(serviceNames(EAST.name)).toEqual(names);
      expect(status(EAST.name)).toMatchObject({ connected: false });
      expect(status(EAST.name)!.failures).toBeGreaterThan(failuresBefore);
      expect(status(EAST.name)!.lastFailure).not.toBeNull();

      await east.etcd.restart();
      await east.putService(service(EAST.name, EAST.id, 'svc-after-restart'));
      await waitFor('east resynced', () => serviceNames(EAST.name).includes('svc-after-restart'), 30_000);
      // the link reconnects with its own backoff (lib/remotes/peer-link.ts), maybe after the stores
      await waitFor('the link up again', () => view(EAST.name)?.link.state === 'connected');
      expect(serviceNames(EAST.name)).toEqual([...names, 'svc-after-restart'].sort());
      expect(await deletes(EAST.name)).toBe(deletesBefore);
      expect(tracker.smallest()).toBe(names.length);
    } finally {
      tracker.stop();
    }
  });

  it('applies after resync a delete made while the link was cut', async () => {
    const deletesBefore = await deletes(EAST.name);
    const relists = () => metric('clustermesh_agent_remote_relists_total', { cluster: EAST.name, kind: 'services' });
    const relistsBefore = await relists();
    await proxy.cut();
    await waitFor('east disconnected', () => view(EAST.name)?.link.state === 'disconnected');
    await east.admin.delete().key(serviceKey(EAST.name, 'default', 'svc-b'));
    await east.putService(service(EAST.name, EAST.id, 'svc-c'));
    expect(serviceNames(EAST.name)).toContain('svc-b');

    await proxy.restore();
    await waitFor(
      'east resynced',
      () => serviceNames(EAST.name).includes('svc-c') && !serviceNames(EAST.name).includes('svc-b'),
      30_000,
    );
    expect(serviceNames(EAST.name)).toEqual(['svc-a', 'svc-after-restart', 'svc-c', 'svc-marker']);
    expect(await deletes(EAST.name)).toBe(deletesBefore + 1);
    expect(await relists()).toBeGreaterThan(relistsBefore); // the resync was a listing, counted
  });

  it('reconnects on new endpoints without dropping records', async () => {
    const names = serviceNames(EAST.name);
    const deletesBefore = await deletes(EAST.name);
    const tracker = trackSmallest(EAST.name);
    try {
      await writeEntry(east, EAST.name); // direct endpoint instead of the proxy
      await proxy.cut(); // from now on only the new endpoint works
      await east.putService(service(EAST.name, EAST.id, 'svc-d'));
      await waitFor('east on its new endpoint', () => serviceNames(EAST.name).includes('svc-d'), 30_000);
      expect(serviceNames(EAST.name)).toEqual([...names, 'svc-d'].sort());
      expect(await deletes(EAST.name)).toBe(deletesBefore);
      expect(tracker.smallest()).toBe(names.length);
      expect(status(EAST.name)).toMatchObject({ connected: true, ready: true });
    } finally {
      tracker.stop();
    }
  });

  it('shows a TLS error for a client certificate from a foreign CA', async () => {
    const foreign = await issueClientCert(await createCA('not-east-ca'), { commonName: 'remote-west' });
    await writePeerEntry(dir, 'rogue', east.etcd.endpoints, east.etcd.ca.certPem, foreign);
    await waitFor('rogue failed', () => (status('rogue')?.failures ?? 0) > 0);
    expect(status('rogue')).toMatchObject({ id: null, connected: false });
    expect(status('rogue')!.lastError).toMatch(/refused the client certificate|TLS/);
    expect(status('rogue')!.lastError).not.toContain('\n');
    expect(view('rogue')).toBeUndefined();
    await removePeerEntry(dir, 'rogue');
  });

  it('drops a peer removed from the config directory', async () => {
    await removePeerEntry(dir, NORTH.name);
    await waitFor('north gone', () => view(NORTH.name) === undefined && status(NORTH.name) === undefined);
    expect(remotes.views().map((v) => v.name)).toEqual([EAST.name]);
  });

  it('lets a silent peer go at once when it is removed, without waiting on the dead connection', async () => {
    await proxy.restore();
    await writeEntry(east, EAST.name, [proxy.endpoint]);
    await east.putService(service(EAST.name, EAST.id, 'svc-through-proxy'));
    await waitFor('east through the proxy again', () => serviceNames(EAST.name).includes('svc-through-proxy'), 30_000);
    // no reset: only the keepalives (lib/kvstore/etcd.ts) notice, and every reconnect hangs in its TLS handshake
    proxy.silence();
    await waitFor('east disconnected by the keepalives', () => view(EAST.name)?.link.state === 'disconnected', KEEPALIVE_NOTICE_MS);
    await removePeerEntry(dir, EAST.name);
    // the watch cancels would otherwise wait for a reconnect to time out (~20 s)
    await waitFor('east gone', () => view(EAST.name) === undefined && status(EAST.name) === undefined, REMOVAL_MS);
    expect(remotes.views()).toEqual([]);
  }, 60_000);
});
