/**
 * lib/k8s/informer.ts against the official kube-apiserver. `listJson`, the list call of every
 * informer of both daemons: plain objects with the list's resourceVersion, field selectors, and
 * failures as client-node's ApiException with the HTTP status (what `statusCode` and the
 * informers' optional-collection and error reporting read). `ResourceInformer.on` after the
 * informer listed: the new handlers get the cache, then the changes.
 */
import { ApiException, KubeConfig, type V1Secret, type V1Service } from '@kubernetes/client-node';
import { ResourceInformer, listJson, statusCode } from '../../lib/k8s/informer.js';
import { clusterResources } from '../../lib/k8s/resources.js';
import { createAll, svc } from './cluster-fixtures.js';
import { startEnv, stopEnv, waitFor, withKind, type TestEnv } from './helpers.js';

const secret = (name: string) =>
  withKind('v1', 'Secret', {
    metadata: { name, namespace: 'default' },
    data: { peer: Buffer.from(name).toString('base64') },
  });

describe('listJson', () => {
  let env: TestEnv;

  beforeAll(async () => {
    env = await startEnv();
    await createAll(env.kube, [
      svc({ name: 'cart', clusterIPs: ['10.112.0.70'] }),
      secret('one'),
      secret('two'),
    ]);
  });
  afterAll(() => stopEnv(env));

  it('lists a collection as plain objects with the list resourceVersion', async () => {
    // cluster-wide: the API server's own `kubernetes` Service too, which it creates a moment after it serves
    let list = await listJson<V1Service>(env.kubeConfig, '/api/v1/services');
    await waitFor('the kubernetes Service', async () => {
      list = await listJson<V1Service>(env.kubeConfig, '/api/v1/services');
      return list.items.some((s) => s.metadata?.name === 'kubernetes');
    });
    expect(list.metadata?.resourceVersion).toMatch(/^[0-9]+$/);
    const cart = list.items.find((s) => s.metadata?.name === 'cart');
    expect(cart?.spec?.clusterIPs).toEqual(['10.112.0.70']);
    expect(cart?.metadata?.annotations).toEqual({ 'clustermesh.io/global': 'true' });
    // as in watch events: a timestamp is the API server's text, not a Date
    expect(typeof cart?.metadata?.creationTimestamp).toBe('string');
  });

  it('applies the field selector', async () => {
    const list = await listJson<V1Secret>(
      env.kubeConfig,
      '/api/v1/namespaces/default/secrets',
      'metadata.name=two',
    );
    expect(list.items.map((s) => [s.metadata?.name, s.data?.peer])).toEqual([
      ['two', Buffer.from('two').toString('base64')],
    ]);
  });

  it('throws an ApiException with code 404 for a collection the cluster does not serve', async () => {
    const failure = await listJson(env.kubeConfig, '/apis/example.com/v1/widgets').catch(
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(ApiException);
    expect(statusCode(failure)).toBe(404);
  });

  it('throws an ApiException with code 403 and the API server’s reason when RBAC refuses the list', async () => {
    const kubelet = new KubeConfig();
    kubelet.loadFromString(await env.kube.kubeletKubeconfig('west-worker'));
    const failure = await listJson(kubelet, '/api/v1/secrets').catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ApiException);
    expect(statusCode(failure)).toBe(403);
    expect(String(failure)).toMatch(/cannot list resource "secrets"/);
  });

  it('hands handlers added after the list every cached object, then the changes', async () => {
    const informer = new ResourceInformer<V1Service>({
      ...clusterResources(env.kubeConfig).services,
      kubeConfig: env.kubeConfig,
      onError: (err) => {
        throw err;
      },
    });
    try {
      await informer.start();
      expect(informer.isSynced).toBe(true);
      const seen: string[] = [];
      informer.on({ upsert: (s) => seen.push(s.metadata?.name ?? '') });
      expect(seen.sort()).toEqual(['cart', 'kubernetes']);
      await createAll(env.kube, [svc({ name: 'later', clusterIPs: ['10.112.0.71'] })]);
      await waitFor('the new Service', async () => seen.includes('later'));
    } finally {
      await informer.stop();
    }
  });
});
