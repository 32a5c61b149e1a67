import type { Etcd3 } from 'etcd3';
import { encodeClusterService } from '../../lib/kvstore/codecs.js';
import { createEtcdClient } from '../../lib/kvstore/etcd.js';
import {
  SERVICES_PREFIX,
  serviceKey,
  servicesClusterPrefix,
  syncedCanaryKey,
} from '../../lib/kvstore/keys.js';
import type { ClusterService } from '../../lib/kvstore/types.js';
import { validateRemoteRecord } from '../../lib/kvstore/validate.js';
import { WatchStore, type WatchEvent } from '../../lib/kvstore/watch-store.js';
import { EtcdHarness } from '../harness/etcd.js';
import { CuttableProxy, waitFor } from './helpers.js';

const CLUSTER = 'west';
const CLUSTER_ID = 2;

const service = (name: string, backend: string, cluster = CLUSTER): ClusterService => ({
  cluster,
  namespace: 'default',
  name,
  frontends: { '10.112.0.10': { http: { Protocol: 'TCP', Port: 80 } } },
  backends: { [backend]: { http: { Protocol: 'TCP', Port: 8080 } } },
  labels: {},
  selector: { app: name },
  includeExternal: false,
  shared: true,
  clusterID: CLUSTER_ID,
});
const keyOf = (name: string): string => serviceKey(CLUSTER, 'default', name);

describe('WatchStore against a real etcd', () => {
  let etcd: EtcdHarness;
  let proxy: CuttableProxy;
  let writer: Etcd3;
  const cleanups: Array<() => Promise<void> | void> = [];

  /** A store whose client reaches etcd through the cuttable proxy. */
  const startStore = async (prefix: string, canaryKey?: string) => {
    const client = createEtcdClient(await etcd.clientConfig('root', { endpoints: [proxy.endpoint] }));
    const events: Array<WatchEvent<ClusterService>> = [];
    const rejects: Array<{ key: string; reason: string }> = [];
    const store = new WatchStore<ClusterService>({
      client,
      prefix,
      canaryKey,
      decode: (key, bytes) =>
        validateRemoteRecord('service', key, bytes, { cluster: CLUSTER, clusterID: CLUSTER_ID }),
      onEvent: (e) => events.push(e),
      onReject: (key, reason) => rejects.push({ key, reason }),
      backoff: { minTimeoutMs: 20, maxTimeoutMs: 300 },
    });
    cleanups.push(async () => {
      await store.stop();
      client.close();
    });
    store.start();
    return { store, events, rejects };
  };
  const put = (svc: ClusterService) => writer.put(keyOf(svc.name)).value(encodeClusterService(svc)).exec();
  const describeEvents = (events: Array<WatchEvent<ClusterService>>) =>
    events.map((e) =>
      e.type === 'upsert' ? `upsert ${e.key} ${Object.keys(e.value.backends)[0]}` : `delete ${e.key}`,
    );

  beforeAll(async () => {
    etcd = await EtcdHarness.start();
    proxy = await CuttableProxy.start(etcd.host, etcd.clientPort);
    writer = createEtcdClient(await etcd.clientConfig('root'));
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
    await writer.delete().all().exec();
  });

  afterAll(async () => {
    writer?.close();
    await proxy?.close();
    await etcd?.stop();
  });

  it('lists then watches, emitting only valid records', async () => {
    await put(service('a', '10.102.1.1'));
    await put(service('b', '10.102.1.2'));
    await writer
      .put(keyOf('evil'))
      .value(encodeClusterService({ ...service('evil', '10.102.1.3'), cluster: 'east' }));
    const { store, events, rejects } = await startStore(servicesClusterPrefix(CLUSTER));
    await store.whenSynced();
    expect(describeEvents(events).sort()).toEqual([
      `upsert ${keyOf('a')} 10.102.1.1`,
      `upsert ${keyOf('b')} 10.102.1.2`,
    ]);
    expect(rejects).toEqual([
      { key: keyOf('evil'), reason: expect.stringContaining('cluster: value says "east"') },
    ]);

    events.length = 0;
    await put(service('c', '10.102.1.4'));
    await put(service('a', '10.102.1.9'));
    await put(service('a', '10.102.1.9')); // same bytes: no event
    await writer.delete().key(keyOf('b'));
    await writer.put(keyOf('a')).value('{"not":"a service"}'); // a valid record turned invalid
    await waitFor('the delete of a', () => events.length >= 4);
    expect(describeEvents(events)).toEqual([
      `upsert ${keyOf('c')} 10.102.1.4`,
      `upsert ${keyOf('a')} 10.102.1.9`,
      `delete ${keyOf('b')}`,
      `delete ${keyOf('a')}`,
    ]);
    expect(rejects.map((r) => r.key)).toEqual([keyOf('evil'), keyOf('a')]);
    expect(store.entries().map(([k]) => k)).toEqual([keyOf('c')]);
  });

  it('reports synced only once the canary exists, when asked to wait for it', async () => {
    const canary = syncedCanaryKey(CLUSTER, SERVICES_PREFIX);
    await put(service('a', '10.102.1.1'));
    const { store, events } = await startStore(servicesClusterPrefix(CLUSTER), canary);
    await waitFor('the initial listing', () => events.length === 1);
    expect(store.synced).toBe(false);
    await writer.put(canary).value(new Date().toISOString());
    await store.whenSynced();
    expect(store.synced).toBe(true);
  });

  it('survives a SIGKILLed and restarted etcd without a single spurious event', async () => {
    const names = Array.from({ length: 50 }, (_, i) => `svc-${i}`);
    for (const name of names) await put(service(name, '10.102.2.1'));
    const { store, events } = await startStore(servicesClusterPrefix(CLUSTER));
    await store.whenSynced();
    expect(events).toHaveLength(names.length);

    events.length = 0;
    await etcd.kill();
    await waitFor('the broken watch to be noticed', () => store.counters.errors > 0);
    await etcd.restart();
    await waitFor('a relist after the restart', () => store.counters.relists >= 1);
    await put(service('after-restart', '10.102.2.2'));
    await waitFor('the watch to deliver a new key', () => events.length >= 1);

    expect(describeEvents(events)).toEqual([`upsert ${keyOf('after-restart')} 10.102.2.2`]);
    expect(store.counters.deletes).toBe(0);
    expect(store.entries()).toHaveLength(names.length + 1);
  });

  it('after a cut connection, deletes only keys removed meanwhile and updates only changed ones', async () => {
    for (const name of ['keep', 'change', 'remove']) await put(service(name, '10.102.3.1'));
    const { store, events } = await startStore(servicesClusterPrefix(CLUSTER));
    await store.whenSynced();

    events.length = 0;
    await proxy.cut();
    await waitFor('the store to notice the cut', () => store.counters.errors > 0);
    await writer.delete().key(keyOf('remove'));
    await put(service('change', '10.102.3.2'));
    await put(service('added', '10.102.3.3'));
    const errorsWhileCut = store.counters.errors;
    expect(events).toEqual([]); // it really was disconnected
    await proxy.restore();
    await waitFor('a relist after the link came back', () => store.counters.relists >= 1);

    expect(errorsWhileCut).toBeGreaterThan(0);
    expect(describeEvents(events).sort()).toEqual(
      [
        `upsert ${keyOf('change')} 10.102.3.2`,
        `upsert ${keyOf('added')} 10.102.3.3`,
        `delete ${keyOf('remove')}`,
      ].sort(),
    );
  });
});
