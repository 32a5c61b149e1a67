/**
 * The local view through real informers against the official kube-apiserver
 * (test/harness/kube-apiserver.ts): annotations and ServiceExports, namespace globality, endpoint
 * conditions, node pod CIDRs, and a malformed annotation logged and counted.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { createMetricsRegistry } from '../../lib/metrics.js';
import { LocalInformers } from '../../agent/local/informers.js';
import { kubeBinariesRequirement, startKubeApiServer, type KubeApiServer } from '../harness/kube-apiserver.js';
import { waitFor } from '../harness/netns.js';
import { describeRequiring } from '../harness/requirements.js';
import { silentLog } from './fakes.js';

function service(namespace: string, name: string, ip: string, annotations: Record<string, string> = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace, name, annotations },
    spec: { clusterIP: ip, clusterIPs: [ip], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
  };
}

function slice(namespace: string, service: string, endpoints: { addr: string; ready?: boolean; serving?: boolean; terminating?: boolean }[]) {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace, name: `${service}-abc`, labels: { 'kubernetes.io/service-name': service } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: endpoints.map(({ addr, ...conditions }) => ({ addresses: [addr], conditions })),
  };
}

describeRequiring('the local view on the official kube-apiserver', [kubeBinariesRequirement()], () => {
  let server: KubeApiServer;
  let informers: LocalInformers;
  const registry = createMetricsRegistry();

  beforeAll(async () => {
    server = await startKubeApiServer({ serviceCIDRs: ['10.111.0.0/16'], serviceExports: true });
    const store = server.objects;
    for (const [name, annotations] of [['apps', {}], ['private', { 'clustermesh.io/global': 'false' }]] as const) {
      await store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, annotations } });
    }
    await store.create(service('apps', 'echo', '10.111.0.10', { 'clustermesh.io/global': 'true', 'clustermesh.io/affinity': 'local' }));
    await store.create(slice('apps', 'echo', [{ addr: '10.101.1.5' }, { addr: '10.101.1.6', ready: false, serving: true, terminating: true }, { addr: '10.101.1.7', ready: false }]));
    await store.create(service('apps', 'exported', '10.111.0.11'));
    await store.create({ apiVersion: 'multicluster.x-k8s.io/v1alpha1', kind: 'ServiceExport', metadata: { namespace: 'apps', name: 'exported' } });
    await store.create(service('private', 'hidden', '10.111.0.12', { 'clustermesh.io/global': 'true' }));
    await store.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'east-1' }, spec: { podCIDR: '10.101.1.0/24', podCIDRs: ['10.101.1.0/24', 'fd99:101:0:1::/64'] } });
    const kc = new KubeConfig();
    kc.loadFromString(server.kubeconfig('east'));
    informers = new LocalInformers({ kubeConfig: kc, log: silentLog, metrics: registry, retryDelayMs: 50 });
    await informers.start();
  });

  afterAll(async () => {
    await informers?.stop();
    await server?.close();
  });

  const byName = () => Object.fromEntries(informers.services().map((s) => [`${s.namespace}/${s.name}`, s]));

  it('is synced after start and reads services, policies and endpoint conditions', () => {
    expect(informers.synced()).toBe(true);
    const echo = byName()['apps/echo'];
    expect(echo.clusterIPs).toEqual(['10.111.0.10']);
    expect(echo.ports).toEqual([{ name: 'http', port: 80, protocol: 'TCP' }]);
    expect(echo.policy).toMatchObject({ ok: true, value: { global: true, shared: true, affinity: 'local' } });
    expect(echo.localBackends.map(({ addr, ready, serving, terminating }) => [addr, ready, serving, terminating])).toEqual([
      ['10.101.1.5', true, true, false],
      ['10.101.1.6', false, true, true],
      ['10.101.1.7', false, false, false],
    ]);
    expect(informers.podCidrs()).toEqual(['10.101.1.0/24', 'fd99:101:0:1::/64']);
  });

  it('makes a ServiceExport’ed Service global, and a non-global namespace’s Services not global', () => {
    expect(byName()['apps/exported'].policy).toMatchObject({ ok: true, value: { global: true, shared: true } });
    const hidden = byName()['private/hidden'].policy;
    expect(hidden).toMatchObject({ ok: true, value: { global: false } });
    expect(hidden.ok && hidden.warnings.join()).toMatch(/namespace private is annotated not global/);
  });

  it('follows updates and counts a malformed annotation as a rejection', async () => {
    let changes = 0;
    const off = informers.onChange(() => changes++);
    const current = await server.objects.get({ apiVersion: 'v1', kind: 'Service' }, 'apps', 'echo');
    await server.objects.update({ ...current, metadata: { ...current.metadata, annotations: { 'clustermesh.io/global': 'yes' } } });
    await waitFor(() => !byName()['apps/echo'].policy.ok, 5000, 'the update to reach the informer');
    off();
    expect(changes).toBeGreaterThan(0);
    expect(byName()['apps/echo'].policy).toMatchObject({ ok: false, error: expect.stringMatching(/clustermesh.io\/global.*"yes"/) });
    const metrics = await registry.getSingleMetricAsString('clustermesh_agent_local_rejected_objects_total');
    expect(metrics).toMatch(/kind="Service"} 1/);
  });
});
