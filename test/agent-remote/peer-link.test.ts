/**
 * PeerLink against a real etcd: config changes, a rewrite of the same config, an invalid one, and
 * the case it exists for — the peer's etcd replaced by an empty one, whose revision is far behind
 * the one the link last saw (a resumed watch would wait for the new etcd to catch up).
 */
import { rm } from 'node:fs/promises';
import type { Etcd3 } from 'etcd3';
import { encodeClusterConfig } from '../../lib/kvstore/codecs.js';
import { connectEtcd } from '../../lib/kvstore/etcd.js';
import { clusterConfigKey } from '../../lib/kvstore/keys.js';
import type { ClusterConfig } from '../../lib/kvstore/types.js';
import { PeerLink } from '../../lib/remotes/peer-link.js';
import { EtcdHarness } from '../harness/etcd.js';
import { waitFor } from '../kvstore/helpers.js';

const PEER = 'west';
const KEY = clusterConfigKey(PEER);
const config = (id: number, cached = false): ClusterConfig => ({
  id,
  capabilities: { syncedCanaries: true, maxConnectedClusters: 255, ...(cached ? { cached: true } : {}) },
});

describe('PeerLink', () => {
  let etcd: EtcdHarness;
  let client: Etcd3;
  let link: PeerLink | null = null;
  const events: string[] = [];

  const startLink = async (): Promise<void> => {
    const read = await client.get(KEY).exec();
    link = new PeerLink({
      client,
      peer: PEER,
      config: config(2),
      revision: read.header.revision,
      backoff: { minTimeoutMs: 20, maxTimeoutMs: 200 },
      handlers: {
        up: () => events.push('up'),
        lost: () => events.push('lost'),
        changed: (c) => events.push(c === null ? 'changed null' : `changed ${encodeClusterConfig(c)}`),
        invalid: () => events.push('invalid'),
      },
    });
    link.start();
    await waitFor('the link to be up', () => events.includes('up'));
    events.length = 0;
  };

  beforeAll(async () => {
    etcd = await EtcdHarness.start();
    client = await connectEtcd(await etcd.clientConfig(), KEY);
  });

  beforeEach(async () => {
    await client.put(KEY).value(encodeClusterConfig(config(2)));
    events.length = 0;
    await startLink();
  });

  afterEach(async () => {
    await link?.close();
    link = null;
  });

  afterAll(async () => {
    client?.close();
    await etcd?.stop();
  });

  it('reports a change of the config, not a rewrite of the same one, and an invalid one as invalid', async () => {
    // the same config in another key order is the same config
    await client.put(KEY).value('{"capabilities":{"maxConnectedClusters":255,"syncedCanaries":true},"id":2}');
    await client.put(KEY).value('{"id": "two"}');
    await client.put(KEY).value(encodeClusterConfig(config(2, true)));
    await waitFor('the change', () => events.some((e) => e.startsWith('changed')));
    expect(events).toEqual(['invalid', `changed ${encodeClusterConfig(config(2, true))}`]);

    events.length = 0;
    await client.delete().key(KEY);
    await waitFor('the delete', () => events.length > 0);
    expect(events).toEqual(['changed null']);
  });

  it("follows the peer's etcd replaced by an empty one: lost, then the new etcd's config, then up", async () => {
    // push the old etcd's revision well ahead of what the new one will reach
    for (let i = 0; i < 50; i++) await client.put(`filler/${i}`).value(String(i));
    await etcd.kill();
    await rm(etcd.dataDir, { recursive: true, force: true });
    await etcd.restart();
    await waitFor('the link to notice', () => events.includes('lost'));
    await client.put(KEY).value(encodeClusterConfig(config(7)));
    const newConfig = `changed ${encodeClusterConfig(config(7))}`;
    await waitFor('the new config', () => events.includes(newConfig), 30_000);
    await waitFor('the link to be up again', () => events.includes('up'), 30_000);
    // the link may have read the new etcd before the config was put there: then it saw none first
    expect(events.filter((e) => e.startsWith('changed'))).toEqual(
      events.includes('changed null') ? ['changed null', newConfig] : [newConfig],
    );

    // and it watches the new etcd from its own revision: the next change arrives at once
    events.length = 0;
    await client.put(KEY).value(encodeClusterConfig(config(8)));
    await waitFor('a change on the new etcd', () => events.length > 0);
    expect(events).toEqual([`changed ${encodeClusterConfig(config(8))}`]);
  });

  it('after close, reports nothing', async () => {
    await link!.close();
    await client.put(KEY).value(encodeClusterConfig(config(9)));
    // a marker written after the change: once a fresh watch sees it, the change was delivered to any watcher
    const seen = await new Promise<boolean>((resolve) => {
      void client
        .watch()
        .key('marker')
        .create()
        .then(async (w) => {
          w.on('put', () => void w.cancel().then(() => resolve(true)));
          await client.put('marker').value('x');
        });
    });
    expect(seen).toBe(true);
    expect(events).toEqual([]);
  });
});
