/**
 * Canaries come only after the full initial sync; a restart against the same etcd rewrites and
 * deletes nothing that did not change, and keeps every identity.
 */
import { KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { ApiserverDaemon, StoreName } from '../../clustermesh-apiserver/daemon.js';
import { CuttableProxy } from '../kvstore/helpers.js';
import { API_LABELS, DEFAULT_NAMESPACE_LABELS, ECHO_LABELS, createAll, endpoint, eps, goldenCluster, podObj, svc } from './cluster-fixtures.js';
import {
  snapshot,
  startDaemon,
  startEnv,
  stopDaemon,
  stopEnv,
  valuesUnder,
  waitFor,
  type TestEnv,
} from './helpers.js';

const STATE_PREFIXES: Record<StoreName, string> = {
  services: 'cilium/state/services/v1',
  nodes: 'cilium/state/nodes/v1',
  identities: 'cilium/state/identities/v1',
  ipcache: 'cilium/state/ip/v1',
};
const canaryOf = (prefix: string) => `cilium/synced/west/${prefix}`;
const IDS = 'cilium/state/identities/v1/id/';

function moreObjects(): KubernetesObject[] {
  const objects: KubernetesObject[] = [];
  for (let i = 0; i < 100; i++) {
    objects.push(svc({ name: `svc-${i}`, clusterIPs: [`10.112.1.${i}`] }));
    objects.push(
      eps({ name: `svc-${i}-1`, serviceName: `svc-${i}`, endpoints: [endpoint(`10.102.3.${i}`)] }),
    );
  }
  for (let i = 0; i < 50; i++) {
    objects.push(
      podObj({ name: `worker-${i}`, labels: { app: `worker-${i % 5}` }, podIPs: [`10.102.4.${i}`] }),
    );
  }
  return objects;
}

type Counters = Record<StoreName, { writes: number; deletes: number }>;

function counters(daemon: ApiserverDaemon): Counters {
  return Object.fromEntries(
    Object.entries(daemon.stores).map(([name, s]) => [
      name,
      { writes: s.counters.writes, deletes: s.counters.deletes },
    ]),
  ) as Counters;
}

const ZERO = { writes: 0, deletes: 0 };

describe('clustermesh-apiserver: initial sync, canaries and restarts', () => {
  let env: TestEnv;
  let proxy: CuttableProxy | undefined;

  beforeAll(async () => {
    env = await startEnv();
    await createAll(env.kube, [...goldenCluster(), ...moreObjects()]);
  });
  afterAll(async () => {
    await proxy?.close();
    await stopEnv(env);
  });

  it('writes no canary and is not ready until every informer synced and every key is written', async () => {
    const kubeUrl = new URL(env.kube.url);
    proxy = await CuttableProxy.start(kubeUrl.hostname, Number(kubeUrl.port));
    await proxy.cut();
    const throughProxy = new KubeConfig();
    throughProxy.loadFromString(
      env.kube.kubeconfig('proxied').replace(env.kube.url, `https://127.0.0.1:${proxy.port}`),
    );
    const daemon = await startDaemon(env, { kubeConfig: throughProxy });

    // the Kubernetes API is unreachable: informers keep failing and retrying
    await waitFor('informer errors', () => env.logs.some((line) => line.includes('failed, retrying')));
    const readyz = await fetch(`${daemon.healthUrl}/readyz`);
    expect(readyz.status).toBe(503);
    expect(await readyz.text()).toMatch(/^not ready: initial sync of services, nodes, identities, ipcache/);
    expect(await valuesUnder(env.admin, 'cilium/synced/')).toEqual({});
    expect(await valuesUnder(env.admin, 'cilium/state/')).toEqual({});

    await proxy.restore();
    await daemon.ready;
    expect((await fetch(`${daemon.healthUrl}/readyz`)).status).toBe(200);

    const keys = await snapshot(env.admin);
    for (const prefix of Object.values(STATE_PREFIXES)) {
      const canary = keys.get(canaryOf(prefix));
      const written = [...keys].filter(([key]) => key.startsWith(`${prefix}/`)).map(([, { rev }]) => rev);
      expect(written.length).toBeGreaterThan(0);
      expect(canary?.rev).toBeGreaterThan(Math.max(...written));
    }
    expect(Object.keys(await valuesUnder(env.admin, 'cilium/state/services/v1/'))).toHaveLength(102);
    await stopDaemon(env, daemon);
  });

  it('restarts against the same etcd without a single delete or rewrite, keeping identities', async () => {
    const before = await snapshot(env.admin);
    const daemon = await startDaemon(env);
    await daemon.ready;
    expect(counters(daemon)).toEqual({ services: ZERO, nodes: ZERO, identities: ZERO, ipcache: ZERO });
    const after = await snapshot(env.admin);
    const unchanged = (key: string) => !key.startsWith('cilium/synced/') && key !== 'cilium/.heartbeat';
    const stable = (s: typeof before) => [...s].filter(([key]) => unchanged(key));
    expect(stable(after)).toEqual(stable(before));
    expect(Object.keys(await valuesUnder(env.admin, IDS))).toHaveLength(7);
    await stopDaemon(env, daemon);
  });

  it('after a restart frees only the identities no pod uses any more and reuses the others', async () => {
    const identitiesBefore = await valuesUnder(env.admin, IDS);
    const idOf = (ids: Record<string, string>, labels: string) =>
      Object.entries(ids).find(([, value]) => value === labels)?.[0];
    await env.kube.objects.delete({ apiVersion: 'v1', kind: 'Pod' }, 'default', 'api-1');
    await createAll(env.kube, [
      podObj({ name: 'echo-3', podIPs: ['10.102.1.77'] }),
      podObj({ name: 'fresh-1', labels: { app: 'fresh' }, podIPs: ['10.102.1.78'] }),
    ]);

    const daemon = await startDaemon(env);
    await daemon.ready;
    const identitiesAfter = await valuesUnder(env.admin, IDS);
    expect(idOf(identitiesAfter, ECHO_LABELS)).toBe(idOf(identitiesBefore, ECHO_LABELS));
    const removed = Object.keys(identitiesBefore).filter((key) => !(key in identitiesAfter));
    const added = Object.keys(identitiesAfter).filter((key) => !(key in identitiesBefore));
    expect(removed.map((key) => identitiesBefore[key])).toEqual([
      API_LABELS,
    ]);
    expect(added.map((key) => identitiesAfter[key])).toEqual([
      `k8s:app=fresh;${DEFAULT_NAMESPACE_LABELS}`,
    ]);
    expect(counters(daemon)).toEqual({
      services: ZERO,
      nodes: ZERO,
      identities: { writes: 1, deletes: 1 },
      ipcache: { writes: 2, deletes: 1 },
    });
    await waitFor('nothing queued', () => Object.values(daemon.stores).every((s) => s.queueSize === 0));
  });
});
