import type { Etcd3, ITxnRequest } from 'etcd3';
import { createEtcdClient } from '../../lib/kvstore/etcd.js';
import {
  SERVICES_PREFIX,
  serviceKey,
  servicesClusterPrefix,
  syncedCanaryKey,
} from '../../lib/kvstore/keys.js';
import { SyncStore, type SyncStoreOptions } from '../../lib/kvstore/sync-store.js';
import { EtcdHarness } from '../harness/etcd.js';
import { waitFor } from './helpers.js';

const CLUSTER = 'west';
const PREFIX = servicesClusterPrefix(CLUSTER);
const CANARY = syncedCanaryKey(CLUSTER, SERVICES_PREFIX);
const KEY_COUNT = 200;
const keyOf = (i: number): string => serviceKey(CLUSTER, 'default', `svc-${i}`);
const valueOf = (i: number, version = 1): string => JSON.stringify({ i, version });

/**
 * Records every transaction the store sends through `client` (its ops and their bytes); `failNext`
 * makes the next ones fail before they reach etcd, running `meanwhile` first (what happens while the
 * request is out); `loseNextAnswer` lets the next one reach etcd and fails it afterwards.
 */
function recordTxns(client: Etcd3) {
  const txns: { ops: number; bytes: number }[] = [];
  const failures: Array<() => void> = [];
  let answersToLose: Array<() => void> = [];
  const send = client.kv.txn.bind(client.kv);
  client.kv.txn = async (req: ITxnRequest, options) => {
    const failure = failures.shift();
    if (failure) {
      failure();
      throw new Error('injected transaction failure');
    }
    const lose = answersToLose.shift();
    if (lose) {
      await send(req, options);
      lose();
      throw new Error('injected loss of the answer');
    }
    const ops = req.success ?? [];
    const bytes = ops.reduce(
      (sum, op) => sum + (op.request_put?.key?.length ?? op.request_delete_range?.key?.length ?? 0) + (op.request_put?.value?.length ?? 0),
      0,
    );
    txns.push({ ops: ops.length, bytes });
    return send(req, options);
  };
  return {
    txns,
    failNext: (meanwhile: () => void = () => undefined) => failures.push(meanwhile),
    loseNextAnswer: (meanwhile: () => void) => (answersToLose = [...answersToLose, meanwhile]),
  };
}

describe('SyncStore against a real etcd', () => {
  let etcd: EtcdHarness;
  let client: Etcd3;
  const stores: SyncStore[] = [];

  const newStore = (extra: Partial<SyncStoreOptions> = {}): SyncStore => {
    const store = new SyncStore({
      client,
      prefix: PREFIX,
      canaryKey: CANARY,
      backoff: { minTimeoutMs: 20, maxTimeoutMs: 500 },
      ...extra,
    });
    stores.push(store);
    return store;
  };
  /** mod_revision of every key under the prefix, and of the canary. */
  const revisions = async (): Promise<Map<string, number>> => {
    const [keys, canary] = await Promise.all([
      client.getAll().prefix(PREFIX).exec(),
      client.get(CANARY).exec(),
    ]);
    return new Map([...keys.kvs, ...canary.kvs].map((kv) => [kv.key.toString(), Number(kv.mod_revision)]));
  };

  beforeAll(async () => {
    etcd = await EtcdHarness.start();
    client = createEtcdClient(await etcd.clientConfig('root'));
  });

  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.stop()));
  });

  afterAll(async () => {
    client?.close();
    await etcd?.stop();
  });

  it('writes the canary only after every key of the initial listing', async () => {
    const store = newStore();
    await store.start();
    for (let i = 0; i < KEY_COUNT; i++) store.upsert(keyOf(i), valueOf(i));
    await store.drain();
    expect(await client.get(CANARY).exists()).toBe(false);
    expect(store.synced).toBe(false);

    for (let i = KEY_COUNT; i < KEY_COUNT + 50; i++) store.upsert(keyOf(i), valueOf(i));
    store.markInitialSyncDone();
    await store.whenSynced();

    const revs = await revisions();
    expect(revs.size).toBe(KEY_COUNT + 50 + 1);
    const lastKeyRevision = Math.max(...[...revs].filter(([k]) => k !== CANARY).map(([, r]) => r));
    expect(revs.get(CANARY)).toBeGreaterThan(lastKeyRevision);
    expect(store.counters).toMatchObject({ writes: KEY_COUNT + 50, deletes: 0, skipped: 0 });
  });

  it('restarted over the same etcd, rewrites no unchanged key and deletes only what is gone', async () => {
    // State left by the previous test: keys 0..249 at version 1.
    const before = await revisions();
    const restarted = newStore();
    for (let i = 0; i < KEY_COUNT + 50; i++) {
      if (i === 7) continue; // gone while the writer was down
      restarted.upsert(keyOf(i), valueOf(i, i === 3 ? 2 : 1)); // key 3 changed
    }
    await restarted.start();
    restarted.markInitialSyncDone();
    await restarted.whenSynced();

    expect(restarted.counters).toEqual({ writes: 1, deletes: 1, skipped: KEY_COUNT + 50 - 2, errors: 0 });
    const after = await revisions();
    expect(after.has(keyOf(7))).toBe(false);
    expect(JSON.parse((await client.get(keyOf(3)).string())!)).toEqual({ i: 3, version: 2 });
    const rewritten = [...after]
      .filter(([key, rev]) => key !== CANARY && before.get(key) !== rev)
      .map(([key]) => key);
    expect(rewritten).toEqual([keyOf(3)]);
  });

  it('does not delete keys it was not told about before markInitialSyncDone', async () => {
    const store = newStore();
    await store.start();
    store.upsert(keyOf(0), valueOf(0));
    await store.drain();
    expect(store.counters.deletes).toBe(0);
    expect((await client.getAll().prefix(PREFIX).keys()).length).toBe(KEY_COUNT + 50 - 1);
  });

  it('coalesces ops per key', async () => {
    const store = newStore();
    await store.start();
    const key = keyOf(1000);
    for (let v = 1; v <= 100; v++) store.upsert(key, valueOf(1000, v));
    await store.drain();
    expect(store.counters.writes).toBeLessThanOrEqual(2); // one in flight, then the last value
    expect(JSON.parse((await client.get(key).string())!)).toEqual({ i: 1000, version: 100 });

    const before = { ...store.counters };
    store.delete(key);
    store.delete(key);
    await store.drain();
    expect(store.counters.deletes - before.deletes).toBe(1);
  });

  it('coalesces ops queued before start: one write per key, nothing for a key created and deleted', async () => {
    const store = newStore();
    for (let v = 1; v <= 20; v++) store.upsert(keyOf(2000), valueOf(2000, v));
    store.upsert(keyOf(2001), 'x');
    store.delete(keyOf(2001));
    await store.start();
    await store.drain();
    expect(store.counters).toMatchObject({ writes: 1, deletes: 0, skipped: 1 });
    expect(await client.get(keyOf(2001)).exists()).toBe(false);
  });

  it('retries through an etcd crash until every write lands', async () => {
    const store = newStore();
    await store.start();
    await etcd.kill();
    for (let i = 0; i < 20; i++) store.upsert(keyOf(3000 + i), valueOf(3000 + i));
    await waitFor('a failed attempt while etcd is down', () => store.counters.errors > 0);
    await etcd.restart();
    await store.drain();
    expect(store.counters.writes).toBe(20);
    const values = await Promise.all(
      Array.from({ length: 20 }, (_, i) => client.get(keyOf(3000 + i)).string()),
    );
    expect(values).toEqual(Array.from({ length: 20 }, (_, i) => valueOf(3000 + i)));
  });

  describe('in transactions', () => {
    let batching: Etcd3;
    let recorder: ReturnType<typeof recordTxns>;
    const BATCHED = 'batched';
    const batchedKey = (i: number) => serviceKey(BATCHED, 'default', `svc-${i}`);
    const batchedCanary = syncedCanaryKey(BATCHED, SERVICES_PREFIX);
    /** The etcd version of every key under the prefix: 1 = written exactly once. */
    const versions = async (): Promise<Map<string, number>> => {
      const { kvs } = await client.getAll().prefix(servicesClusterPrefix(BATCHED)).exec();
      return new Map(kvs.map((kv) => [kv.key.toString(), Number(kv.version)]));
    };
    const batchedStore = (extra: Partial<SyncStoreOptions> = {}) =>
      newStore({ client: batching, prefix: servicesClusterPrefix(BATCHED), canaryKey: batchedCanary, ...extra });

    beforeEach(async () => {
      batching = createEtcdClient(await etcd.clientConfig('root'));
      recorder = recordTxns(batching);
      await client.delete().prefix(servicesClusterPrefix(BATCHED)).exec();
      await client.delete().key(batchedCanary).exec();
    });

    afterEach(async () => {
      await Promise.all(stores.splice(0).map((s) => s.stop()));
      batching.close();
    });

    it('writes n records in at most ceil(n / 128) transactions, each key once', async () => {
      const n = 1000;
      const store = batchedStore();
      await store.start();
      for (let i = 0; i < n; i++) store.upsert(batchedKey(i), valueOf(i));
      store.markInitialSyncDone();
      await store.whenSynced();

      expect(recorder.txns.length).toBeLessThanOrEqual(Math.ceil(n / 128));
      expect(Math.max(...recorder.txns.map((t) => t.ops))).toBeLessThanOrEqual(128);
      expect(recorder.txns.reduce((sum, t) => sum + t.ops, 0)).toBe(n);
      const written = await versions();
      expect(written.size).toBe(n);
      expect([...written.values()].every((v) => v === 1)).toBe(true);
      expect(store.counters).toEqual({ writes: n, deletes: 0, skipped: 0, errors: 0 });
    });

    it('bounds a transaction by bytes as well as by count', async () => {
      const n = 100;
      const big = 'x'.repeat(1000);
      const maxTxnBytes = 10_000;
      const store = batchedStore({ maxTxnBytes });
      await store.start();
      for (let i = 0; i < n; i++) store.upsert(batchedKey(i), big);
      await store.drain();

      expect(recorder.txns.every((t) => t.bytes <= maxTxnBytes)).toBe(true);
      expect(recorder.txns.length).toBeLessThanOrEqual(Math.ceil(n / Math.floor(maxTxnBytes / (batchedKey(n).length + 32 + big.length))));
      expect((await versions()).size).toBe(n);
    });

    it('a lone change goes out at once, in a transaction of its own', async () => {
      const store = batchedStore();
      await store.start();
      await store.drain();
      store.upsert(batchedKey(1), valueOf(1));
      // Nothing else is ever queued: a store holding ops until a batch fills would never write it.
      await waitFor('the lone key in etcd', async () => (await client.get(batchedKey(1)).string()) === valueOf(1));
      expect(recorder.txns).toEqual([{ ops: 1, bytes: batchedKey(1).length + valueOf(1).length }]);
    });

    it('retries a failed transaction without losing, duplicating or writing a superseded value', async () => {
      const n = 300;
      const store = batchedStore();
      await store.start();
      // The first transaction fails, and key 5 gets a newer value while it is out.
      recorder.failNext(() => store.upsert(batchedKey(5), valueOf(5, 2)));
      for (let i = 0; i < n; i++) store.upsert(batchedKey(i), valueOf(i));
      store.markInitialSyncDone();
      await store.whenSynced();

      expect(store.counters).toEqual({ writes: n, deletes: 0, skipped: 0, errors: 1 });
      const written = await versions();
      expect(written.size).toBe(n);
      expect([...written.values()].every((v) => v === 1)).toBe(true); // key 5: only its newer value
      expect(JSON.parse((await client.get(batchedKey(5)).string())!)).toEqual({ i: 5, version: 2 });
      expect(recorder.txns.length).toBeLessThanOrEqual(Math.ceil(n / 128) + 1);

      const [canary] = (await client.get(batchedCanary).exec()).kvs;
      const { kvs } = await client.getAll().prefix(servicesClusterPrefix(BATCHED)).exec();
      expect(Number(canary.mod_revision)).toBeGreaterThan(Math.max(...kvs.map((kv) => Number(kv.mod_revision))));
    });

    it('does not trust what etcd holds after a transaction whose answer was lost', async () => {
      const store = batchedStore();
      await store.start();
      // Applied by etcd, reported failed; meanwhile key 1 is deleted and key 2 set back to nothing new.
      recorder.loseNextAnswer(() => {
        store.delete(batchedKey(1));
        store.upsert(batchedKey(2), valueOf(2));
      });
      store.upsert(batchedKey(1), valueOf(1));
      store.upsert(batchedKey(2), valueOf(2, 2));
      await store.drain();

      expect(await client.get(batchedKey(1)).exists()).toBe(false);
      expect(JSON.parse((await client.get(batchedKey(2)).string())!)).toEqual({ i: 2, version: 1 });
      expect(store.counters).toMatchObject({ deletes: 1, skipped: 0, errors: 1 });
    });

    it('writes the canary only once every transaction of the initial sync is committed', async () => {
      const store = batchedStore({ maxInFlight: 2 });
      await store.start();
      // Every transaction of the initial sync fails once: the canary must wait for all the retries.
      for (let t = 0; t < 4; t++) recorder.failNext();
      for (let i = 0; i < 400; i++) store.upsert(batchedKey(i), valueOf(i));
      store.markInitialSyncDone();
      await store.whenSynced();

      expect(store.counters.errors).toBe(4);
      const [canary] = (await client.get(batchedCanary).exec()).kvs;
      const { kvs } = await client.getAll().prefix(servicesClusterPrefix(BATCHED)).exec();
      expect(kvs.length).toBe(400);
      expect(Number(canary.mod_revision)).toBeGreaterThan(Math.max(...kvs.map((kv) => Number(kv.mod_revision))));
    });

    it('mixes deletes and upserts in one transaction and skips what etcd already holds', async () => {
      const first = batchedStore();
      await first.start();
      for (let i = 0; i < 10; i++) first.upsert(batchedKey(i), valueOf(i));
      await first.drain();
      await first.stop();

      const restarted = batchedStore();
      for (let i = 0; i < 10; i++) {
        if (i < 3) continue; // 0..2 are gone
        restarted.upsert(batchedKey(i), valueOf(i, i === 9 ? 2 : 1));
      }
      restarted.markInitialSyncDone(); // before start: the deletions go out with the first flush
      await restarted.start();
      await restarted.whenSynced();

      expect(restarted.counters).toEqual({ writes: 1, deletes: 3, skipped: 6, errors: 0 });
      expect(recorder.txns.slice(-1)).toEqual([expect.objectContaining({ ops: 4 })]);
      expect([...(await versions()).keys()].sort()).toEqual(
        Array.from({ length: 7 }, (_, i) => batchedKey(i + 3)).sort(),
      );
    });
  });

  it('puts keys under a lease when asked (ephemeral keys)', async () => {
    const store = newStore({
      prefix: servicesClusterPrefix('ephemeral'),
      canaryKey: syncedCanaryKey('ephemeral', SERVICES_PREFIX),
      leaseTTLSeconds: 10,
    });
    await store.start();
    store.upsert(serviceKey('ephemeral', 'default', 'a'), '1');
    store.markInitialSyncDone();
    await store.whenSynced();
    const [kv] = (await client.get(serviceKey('ephemeral', 'default', 'a')).exec()).kvs;
    const [canary] = (await client.get(syncedCanaryKey('ephemeral', SERVICES_PREFIX)).exec()).kvs;
    expect(kv?.lease).not.toBe('0');
    expect(canary?.lease).toBe(kv?.lease);
  });

  it('refuses a key outside its prefix', () => {
    expect(() => newStore().upsert(serviceKey('east', 'default', 'x'), '1')).toThrow(
      /outside this store's prefix/,
    );
  });
});
