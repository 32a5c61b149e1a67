/** ServiceExports and Namespaces steer what is exported; heartbeat, /healthz and /metrics. */
import type { ApiserverDaemon } from '../../clustermesh-apiserver/daemon.js';
import { createAll, endpoint, eps, svc, update } from './cluster-fixtures.js';
import { metricValue, startDaemon, startEnv, stopEnv, waitFor, withKind, type TestEnv } from './helpers.js';

const key = (ns: string, name: string) => `cilium/state/services/v1/west/${ns}/${name}`;
const exists = (env: TestEnv, k: string) => async () => (await env.admin.get(k).string()) !== null;
const gone = (env: TestEnv, k: string) => async () => (await env.admin.get(k).string()) === null;

describe('clustermesh-apiserver: export sources, heartbeat and health endpoints', () => {
  let env: TestEnv;
  let daemon: ApiserverDaemon;

  beforeAll(async () => {
    env = await startEnv();
    await createAll(env.kube, [
      withKind('v1', 'Namespace', { metadata: { name: 'shop' } }),
      svc({ name: 'cart', namespace: 'shop', clusterIPs: ['10.112.0.60'] }),
      eps({ name: 'cart-1', namespace: 'shop', serviceName: 'cart', endpoints: [endpoint('10.102.1.60')] }),
      svc({ name: 'mcs', clusterIPs: ['10.112.0.61'], annotations: {} }),
    ]);
    daemon = await startDaemon(env, { heartbeatIntervalMs: 100 });
    await daemon.ready;
  });
  afterAll(() => stopEnv(env));

  it('exports a non-global Service while a ServiceExport names it', async () => {
    expect(await exists(env, key('default', 'mcs'))()).toBe(false);
    const exported = withKind('multicluster.x-k8s.io/v1alpha1', 'ServiceExport', {
      metadata: { name: 'mcs', namespace: 'default' },
    });
    await createAll(env.kube, [exported]);
    await waitFor('the exported service', exists(env, key('default', 'mcs')));
    await env.kube.objects.delete(exported, 'default', 'mcs');
    await waitFor('the unexported service to go', gone(env, key('default', 'mcs')));
  });

  it('withdraws the services of a namespace annotated not global, and restores them', async () => {
    expect(await exists(env, key('shop', 'cart'))()).toBe(true);
    const shop = (global: string) =>
      withKind('v1', 'Namespace', {
        metadata: { name: 'shop', annotations: { 'clustermesh.io/global': global } },
      });
    await update(env.kube, shop('false'));
    await waitFor('cart to be withdrawn', gone(env, key('shop', 'cart')));
    await update(env.kube, shop('true'));
    await waitFor('cart to be back', exists(env, key('shop', 'cart')));
  });

  it('rewrites the heartbeat on its interval', async () => {
    const first = await env.admin.get('cilium/.heartbeat').string();
    expect(Date.parse(first!)).not.toBeNaN();
    await waitFor(
      'a newer heartbeat',
      async () => (await env.admin.get('cilium/.heartbeat').string()) !== first,
    );
  });

  it('serves /healthz, /readyz and the metrics', async () => {
    expect((await fetch(`${daemon.healthUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${daemon.healthUrl}/readyz`)).status).toBe(200);
    const url = daemon.healthUrl;
    expect(await metricValue(url, 'clustermesh_apiserver_objects', 'kind', 'services')).toBe(1);
    expect(await metricValue(url, 'clustermesh_apiserver_queue_depth', 'queue', 'services')).toBe(0);
    expect(
      await metricValue(url, 'clustermesh_apiserver_sync_latency_seconds_count', 'queue', 'services'),
    ).toBeGreaterThan(0);
    expect(await metricValue(url, 'clustermesh_apiserver_ready', 'cluster', 'west')).toBe(1);
  });
});
