import { rm } from 'node:fs/promises';
import type { Etcd3, IRangeRequest, IRangeResponse } from 'etcd3';
import { pino } from 'pino';
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
import { RelistLimiter } from '../../lib/kvstore/relist-limiter.js';
import { WatchStore, type WatchEvent, type WatchStoreOptions } from '../../lib/kvstore/watch-store.js';
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
const PREFIX = servicesClusterPrefix(CLUSTER);
const CANARY = syncedCanaryKey(CLUSTER, SERVICES_PREFIX);

interface RangeCall {
  /** the canary, or a page of the prefix */
  what: 'canary' | 'page';
  /** '0' when the request was not pinned to a revision */
  revision: string;
  /** the revision etcd answered at */
  answeredAt: string;
}

/**
 * Records every range request the store's client sends (what, at which revision), and runs
 * `after(what, n)` once the n-th request of that kind (1-based) was answered, before the store
 * sees the answer: what a writer did while the listing was in flight.
 */
function recordRanges(
  client: Etcd3,
  after: (what: RangeCall['what'], n: number) => Promise<void> = async () => {},
) {
  const calls: RangeCall[] = [];
  const counts = { canary: 0, page: 0 };
  const send = client.kv.range.bind(client.kv);
  client.kv.range = async (req: IRangeRequest, options): Promise<IRangeResponse> => {
    const what = req.key?.toString() === CANARY ? 'canary' : 'page';
    const response = await send(req, options);
    calls.push({ what, revision: String(req.revision ?? '0'), answeredAt: response.header.revision });
    await after(what, ++counts[what]);
    return response;
  };
  return calls;
}

describe('WatchStore against a real etcd', () => {
  let etcd: EtcdHarness;
  let proxy: CuttableProxy;
  let writer: Etcd3;
  const cleanups: Array<() => Promise<void> | void> = [];

  /**
   * A store whose client reaches etcd through the cuttable proxy; `beforeStart` sees the client
   * first (to record its requests).
   */
  const startStore = async (
    prefix: string,
    canaryKey?: string,
    extra: Partial<WatchStoreOptions<ClusterService>> = {},
    beforeStart: (client: Etcd3) => void = () => undefined,
  ) => {
    const client = createEtcdClient(await etcd.clientConfig('root', { endpoints: [proxy.endpoint] }));
    beforeStart(client);
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
      ...extra,
    });
    cleanups.push(async () => {
      await store.stop();
      client.close();
    });
    store.start();
    return { store, events, rejects };
  };
  const putCanary = () => writer.put(CANARY).value(new Date().toISOString()).exec();
  const deletesOf = (events: Array<WatchEvent<ClusterService>>) =>
    events.flatMap((e) => (e.type === 'delete' ? [e.key] : [])).sort();
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

  it('a peer whose etcd restarted empty: no delete while it repopulates, exactly the gone keys once its canary is back', async () => {
    const names = ['a', 'b', 'c', 'd', 'e', 'f'];
    for (const name of names) await put(service(name, '10.102.5.1'));
    await putCanary();
    const { store, events } = await startStore(PREFIX, CANARY);
    await store.whenSynced();
    events.length = 0;

    await etcd.kill();
    await rm(etcd.dataDir, { recursive: true, force: true });
    await etcd.restart();
    await waitFor('a listing of the empty etcd', () => store.counters.held === names.length);

    // the peer writes a..d back one by one (b and d unchanged), never e and f
    const rewrites: Array<[string, string]> = [
      ['a', '10.102.5.2'],
      ['b', '10.102.5.1'],
      ['c', '10.102.5.3'],
      ['d', '10.102.5.1'],
    ];
    for (const [name, backend] of rewrites) {
      await put(service(name, backend));
      expect(deletesOf(events)).toEqual([]);
      expect(store.entries()).toHaveLength(names.length); // e and f still served
    }
    await waitFor('the changed values', () => events.length === 2);
    expect(deletesOf(events)).toEqual([]);
    const relistsBeforeCanary = store.counters.relists;

    await putCanary();
    await waitFor('the deletes after the canary', () => deletesOf(events).length >= 2);
    expect(deletesOf(events)).toEqual([keyOf('e'), keyOf('f')]);
    expect(describeEvents(events.filter((e) => e.type === 'upsert')).sort()).toEqual([
      `upsert ${keyOf('a')} 10.102.5.2`,
      `upsert ${keyOf('c')} 10.102.5.3`,
    ]);
    expect(
      store
        .entries()
        .map(([key]) => key)
        .sort(),
    ).toEqual(['a', 'b', 'c', 'd'].map(keyOf));
    expect(store.counters.held).toBe(0);
    expect(store.counters.relists).toBe(relistsBeforeCanary + 1);
  });

  it("reads the canary at the listing's revision: synced never fires on an incomplete listing", async () => {
    await put(service('early', '10.102.6.1'));
    let entriesAtSynced: string[] = [];
    let calls: RangeCall[] = [];
    // the writer finishes its sync (one more key, then its canary) right after the first page
    const writerMeanwhile = async (what: RangeCall['what'], n: number) => {
      if (what !== 'page' || n !== 1) return;
      await put(service('late', '10.102.6.2'));
      await putCanary();
    };
    const { store } = await startStore(
      PREFIX,
      CANARY,
      {
        onSynced: () =>
          (entriesAtSynced = store
            .entries()
            .map(([key]) => key)
            .sort()),
      },
      (client) => (calls = recordRanges(client, writerMeanwhile)),
    );
    await store.whenSynced();
    expect(entriesAtSynced).toEqual([keyOf('early'), keyOf('late')].sort());
    // the first canary read was pinned to the first page's revision, and the canary was not there yet
    expect(calls[0]).toMatchObject({ what: 'page', revision: '0' });
    expect(calls[1]).toMatchObject({ what: 'canary', revision: calls[0]!.answeredAt });
    expect(store.counters.relists).toBe(1); // the canary's appearance, nothing else
  });

  /** Compacts the history right after the n-th canary read (the end of the n-th listing) while n <= times. */
  const compactAfterListings = (times: number) => async (what: RangeCall['what'], n: number) => {
    if (what !== 'canary' || n > times) return;
    await put(service('a', `10.102.7.${n + 1}`)); // a change the store must not miss
    const { header } = await writer.put('compaction-marker').value(String(n)).exec();
    await writer.kv.compact({ revision: header.revision, physical: true });
  };

  it('a peer compacting its history: the broken watch relists once, no delete, no duplicate event', async () => {
    for (const name of ['a', 'b', 'c']) await put(service(name, '10.102.7.1'));
    await putCanary();
    const warnings: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line).msg) });
    const { store, events } = await startStore(PREFIX, CANARY, { logger }, (client) =>
      recordRanges(client, compactAfterListings(1)),
    );
    await waitFor('the relist after the compacted watch', () => store.counters.relists === 1);
    await put(service('d', '10.102.7.9'));
    await waitFor('the watch after the relist', () => events.length === 5);
    expect(describeEvents(events)).toEqual([
      `upsert ${keyOf('a')} 10.102.7.1`,
      `upsert ${keyOf('b')} 10.102.7.1`,
      `upsert ${keyOf('c')} 10.102.7.1`,
      `upsert ${keyOf('a')} 10.102.7.2`,
      `upsert ${keyOf('d')} 10.102.7.9`,
    ]);
    expect(store.counters).toMatchObject({ relists: 1, deletes: 0, errors: 1 });
    expect(warnings).toEqual([expect.stringMatching(/^watch failed: etcd canceled the watch .*compacted/)]);
  });

  it('a watch that breaks right after every listing relists at the pace of the limiter', async () => {
    const BREAKS = 5;
    await put(service('a', '10.102.7.1'));
    await putCanary();
    const limiter = new RelistLimiter({ random: () => 0 });
    const { store, events } = await startStore(
      PREFIX,
      CANARY,
      { limiter, backoff: { minTimeoutMs: 20, maxTimeoutMs: 300 } },
      (client) => recordRanges(client, compactAfterListings(BREAKS)),
    );
    await waitFor('the last relist', () => store.counters.relists === BREAKS);
    await put(service('b', '10.102.7.9'));
    await waitFor('the watch that held', () => store.get(keyOf('b')) !== undefined);

    expect(store.counters).toMatchObject({ relists: BREAKS, errors: BREAKS, deletes: 0 });
    // every relist waited its turn: 20, 40, 80, 160, 300 ms nominal, at least half of each
    expect(limiter.counters).toEqual({ granted: BREAKS, delayedMs: 10 + 20 + 40 + 80 + 150 });
    expect(deletesOf(events)).toEqual([]);
  });

  it('reads a large prefix in pages, every page and the canary at the revision of the first', async () => {
    const names = Array.from({ length: 95 }, (_, i) => `p-${String(i).padStart(3, '0')}`);
    await Promise.all(names.map((name) => put(service(name, '10.102.9.1'))));
    await putCanary();
    let calls: RangeCall[] = [];
    // while the listing is in flight the writer adds a key and deletes one, both in later pages
    const writerMeanwhile = async (what: RangeCall['what'], n: number) => {
      if (what !== 'page' || n !== 1) return;
      await put(service('p-zzz', '10.102.9.2'));
      await writer.delete().key(keyOf('p-090'));
    };
    const { store, events } = await startStore(
      PREFIX,
      CANARY,
      { pageSize: 10 },
      (client) => (calls = recordRanges(client, writerMeanwhile)),
    );
    await store.whenSynced();
    // the listing is the prefix as of the first page: p-090 still there, p-zzz not yet
    expect(
      events
        .slice(0, names.length)
        .map((e) => e.key)
        .sort(),
    ).toEqual(names.map(keyOf));
    await waitFor(
      'the watch to deliver what changed during the listing',
      () => events.length === names.length + 2,
    );
    expect(describeEvents(events.slice(names.length))).toEqual([
      `upsert ${keyOf('p-zzz')} 10.102.9.2`,
      `delete ${keyOf('p-090')}`,
    ]);
    const pages = calls.filter((c) => c.what === 'page');
    const revision = pages[0]!.answeredAt;
    expect(pages).toHaveLength(10);
    expect(store.counters.pages).toBe(10);
    expect(pages.slice(1).map((c) => c.revision)).toEqual(Array(9).fill(revision));
    expect(calls.filter((c) => c.what === 'canary').map((c) => c.revision)).toEqual([revision]);
  });

  it('a compaction while a listing is paged makes the store list again from scratch: each key once, no delete', async () => {
    const names = Array.from({ length: 25 }, (_, i) => `q-${String(i).padStart(3, '0')}`);
    await Promise.all(names.map((name) => put(service(name, '10.102.10.1'))));
    await putCanary();
    let compactions = 0;
    const compactAfterFirstPage = async (what: RangeCall['what'], n: number) => {
      if (what !== 'page' || n !== 1) return;
      const { header } = await writer.put('compaction-marker').value('x').exec();
      await writer.kv.compact({ revision: header.revision, physical: true });
      compactions++;
    };
    const { store, events } = await startStore(PREFIX, CANARY, { pageSize: 10 }, (client) =>
      recordRanges(client, compactAfterFirstPage),
    );
    await store.whenSynced();
    expect(compactions).toBe(1);
    expect(describeEvents(events).sort()).toEqual(names.map((name) => `upsert ${keyOf(name)} 10.102.10.1`));
    // the second page at the compacted revision failed the first listing; the next one is the first applied
    expect(store.counters).toMatchObject({ relists: 0, errors: 1, deletes: 0, pages: 3 });
  });
});
