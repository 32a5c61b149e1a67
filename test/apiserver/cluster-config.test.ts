/**
 * The cluster config key is kept: the pure decision, and against a real etcd a delete and an edit
 * by someone else are written back and counted, while the daemon's own value is left alone.
 */
import { clusterConfigRepair } from '../../clustermesh-apiserver/cluster-config.js';
import type { ApiserverDaemon } from '../../clustermesh-apiserver/daemon.js';
import { CLUSTER, metricValue, startDaemon, startEnv, stopDaemon, stopEnv, waitFor, type TestEnv } from './helpers.js';

const KEY = `cilium/cluster-config/${CLUSTER.name}`;
const OURS = '{"id":2}';

describe('clusterConfigRepair', () => {
  it.each([
    ['our value: nothing', OURS, { write: false }],
    ['absent: deleted, written back', null, { write: true, reason: 'deleted' }],
    ['another ID: edited, written back', '{"id":7}', { write: true, reason: 'edited' }],
    ['same content, other bytes: edited (the key holds exactly what the daemon writes)', '{ "id": 2 }', { write: true, reason: 'edited' }],
    ['empty value: edited', '', { write: true, reason: 'edited' }],
  ] as const)('%s', (_name, current, expected) => {
    expect(clusterConfigRepair(current, OURS)).toEqual(expected);
  });
});

describe('clustermesh-apiserver keeps its cluster config key', () => {
  let env: TestEnv;
  let daemon: ApiserverDaemon;
  let ours: string;
  const current = () => env.admin.get(KEY).string();
  const restores = (reason: string) => metricValue(daemon.healthUrl, 'clustermesh_apiserver_cluster_config_restores_total', 'reason', reason);

  beforeAll(async () => {
    env = await startEnv();
    daemon = await startDaemon(env);
    await daemon.ready;
    ours = (await current())!;
  });
  afterAll(() => stopEnv(env));

  it('writes a deleted key back and counts it', async () => {
    expect(JSON.parse(ours)).toMatchObject({ id: CLUSTER.id });
    await env.admin.delete().key(KEY).exec();
    await waitFor('the key written back', async () => (await current()) === ours);
    await waitFor('the restore counted', async () => (await restores('deleted')) === 1);
  });

  it('writes an edited key back and counts it', async () => {
    await env.admin.put(KEY).value('{"id":99}').exec();
    await waitFor('the key written back', async () => (await current()) === ours);
    await waitFor('the restore counted', async () => (await restores('edited')) === 1);
  });

  it('does not rewrite its own value: a restart leaves the key’s revision alone', async () => {
    const before = (await env.admin.get(KEY).exec()).kvs[0].mod_revision;
    await stopDaemon(env, daemon);
    daemon = await startDaemon(env);
    await daemon.ready;
    expect((await env.admin.get(KEY).exec()).kvs[0].mod_revision).toBe(before);
  });

});
