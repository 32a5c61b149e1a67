/** The unmodified @kubernetes/client-node against the lab's API server. */
import * as k8s from '@kubernetes/client-node';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type KubeApiServer, startKubeApiServer } from '../../lab/kube-apiserver/server.js';
import { rawWatch, waitFor } from './helpers.js';

function clientFor(server: KubeApiServer): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromString(server.kubeconfig('test'));
  return kc;
}

function service(name: string, labels: Record<string, string> = {}): k8s.V1Service {
  return {
    metadata: { name, labels },
    spec: { ports: [{ name: 'http', port: 80 }], selector: { app: name } },
  };
}

async function apiError(
  promise: Promise<unknown>,
): Promise<{ code: number; body: { kind: string; reason: string; code: number } }> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof k8s.ApiException)
      return { code: error.code, body: JSON.parse(error.body as string) };
    throw error;
  }
  throw new Error('the request succeeded, an API error was expected');
}

describe('client-node against the lab API server', () => {
  let server: KubeApiServer;
  let core: k8s.CoreV1Api;

  beforeAll(async () => {
    server = await startKubeApiServer({ bookmarkIntervalMs: 50 });
    core = clientFor(server).makeApiClient(k8s.CoreV1Api);
  });
  afterAll(() => server?.close());

  it('creates, lists, patches and deletes Services with CoreV1Api', async () => {
    const created = await core.createNamespacedService({ namespace: 'default', body: service('crud') });
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.metadata?.creationTimestamp).toBeInstanceOf(Date);
    expect(Number(created.metadata?.resourceVersion)).toBeGreaterThan(0);

    const listed = await core.listNamespacedService({ namespace: 'default' });
    expect(listed.items.map((s) => s.metadata?.name)).toContain('crud');
    expect(Number(listed.metadata?.resourceVersion)).toBeGreaterThanOrEqual(
      Number(created.metadata?.resourceVersion),
    );

    const patched = await core.patchNamespacedService(
      {
        name: 'crud',
        namespace: 'default',
        body: { metadata: { annotations: { 'service.cilium.io/global': 'true' } } },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    expect(patched.metadata?.annotations).toEqual({ 'service.cilium.io/global': 'true' });
    expect(Number(patched.metadata?.resourceVersion)).toBeGreaterThan(
      Number(created.metadata?.resourceVersion),
    );
    expect(patched.metadata?.uid).toBe(created.metadata?.uid);

    const strategic = await core.patchNamespacedService(
      { name: 'crud', namespace: 'default', body: { spec: { ports: [{ port: 443, name: 'https' }] } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    );
    expect(strategic.spec?.ports?.map((p) => p.port)).toEqual([80, 443]);

    const jsonPatched = await core.patchNamespacedService(
      {
        name: 'crud',
        namespace: 'default',
        body: [{ op: 'replace', path: '/spec/selector/app', value: 'other' }],
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch),
    );
    expect(jsonPatched.spec?.selector).toEqual({ app: 'other' });

    const deleted = await core.deleteNamespacedService({ name: 'crud', namespace: 'default' });
    expect(deleted.metadata?.name).toBe('crud');
    const missing = await apiError(core.readNamespacedService({ name: 'crud', namespace: 'default' }));
    expect(missing.code).toBe(404);
    expect(missing.body).toMatchObject({ kind: 'Status', reason: 'NotFound', code: 404 });
    expect(
      (await apiError(core.deleteNamespacedService({ name: 'crud', namespace: 'default' }))).body.reason,
    ).toBe('NotFound');
  });

  it('answers 409 AlreadyExists, 409 Conflict on a stale update, and generates names', async () => {
    await core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { name: 'cfg' }, data: { a: '1' } },
    });
    const duplicate = await apiError(
      core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'cfg' } } }),
    );
    expect(duplicate).toMatchObject({ code: 409, body: { reason: 'AlreadyExists' } });

    const first = await core.readNamespacedConfigMap({ name: 'cfg', namespace: 'default' });
    const second = await core.replaceNamespacedConfigMap({
      name: 'cfg',
      namespace: 'default',
      body: { ...first, data: { a: '2' } },
    });
    expect(second.data).toEqual({ a: '2' });
    const stale = await apiError(
      core.replaceNamespacedConfigMap({
        name: 'cfg',
        namespace: 'default',
        body: { ...first, data: { a: '3' } },
      }),
    );
    expect(stale).toMatchObject({ code: 409, body: { reason: 'Conflict' } });
    expect((await core.readNamespacedConfigMap({ name: 'cfg', namespace: 'default' })).data).toEqual({
      a: '2',
    });

    const generated = await core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { generateName: 'gen-' } },
    });
    expect(generated.metadata?.name).toMatch(/^gen-[a-z0-9]{5}$/);
    const noNamespace = await apiError(
      core.createNamespacedConfigMap({ namespace: 'nowhere', body: { metadata: { name: 'x' } } }),
    );
    expect(noNamespace).toMatchObject({ code: 404, body: { reason: 'NotFound' } });
  });

  it('filters lists with label and field selectors', async () => {
    await core.createNamespace({ body: { metadata: { name: 'selectors' } } });
    const labelled: Array<[string, Record<string, string>]> = [
      ['a', { app: 'web', tier: 'front' }],
      ['b', { app: 'web', tier: 'back' }],
      ['c', { app: 'db' }],
    ];
    for (const [name, labels] of labelled)
      await core.createNamespacedService({ namespace: 'selectors', body: service(name, labels) });
    const names = async (labelSelector?: string, fieldSelector?: string) =>
      (await core.listNamespacedService({ namespace: 'selectors', labelSelector, fieldSelector })).items.map(
        (s) => s.metadata?.name,
      );

    expect(await names('app=web')).toEqual(['a', 'b']);
    expect(await names('app==web,tier!=front')).toEqual(['b']);
    expect(await names('tier in (front,back)')).toEqual(['a', 'b']);
    expect(await names('tier notin (front)')).toEqual(['b', 'c']);
    expect(await names('tier')).toEqual(['a', 'b']);
    expect(await names('!tier')).toEqual(['c']);
    expect(await names(undefined, 'metadata.name=c')).toEqual(['c']);
    expect(await names('app=web', 'metadata.name!=a')).toEqual(['b']);
    const across = await core.listServiceForAllNamespaces({ fieldSelector: 'metadata.namespace=selectors' });
    expect(across.items).toHaveLength(3);
    expect(
      (await apiError(core.listNamespacedService({ namespace: 'selectors', labelSelector: 'app in web' })))
        .body.reason,
    ).toBe('BadRequest');
  });

  it('keeps .status on Service updates and changes it only through /status', async () => {
    await core.createNamespacedService({ namespace: 'default', body: service('lb') });
    const ingress = { loadBalancer: { ingress: [{ ip: '10.99.0.50' }] } };
    await core.patchNamespacedServiceStatus(
      { name: 'lb', namespace: 'default', body: { status: ingress } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    const updated = await core.patchNamespacedService(
      {
        name: 'lb',
        namespace: 'default',
        body: { status: { loadBalancer: {} }, metadata: { labels: { x: 'y' } } },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    expect(updated.status).toEqual(ingress);
    expect(updated.metadata?.labels).toEqual({ x: 'y' });
  });

  it('serves generic kinds through KubernetesObjectApi (discovery-driven)', async () => {
    const objects = k8s.KubernetesObjectApi.makeApiClient(clientFor(server));
    const spec = {
      apiVersion: 'multicluster.x-k8s.io/v1alpha1',
      kind: 'ServiceExport',
      metadata: { name: 'web', namespace: 'default' },
    };
    await objects.create(spec);
    const read = await objects.read(spec);
    expect(read.metadata?.uid).toBeDefined();
    const slice = {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'web-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.101.1.5'], conditions: { ready: true } }],
    };
    await objects.create(slice);
    const slices = await objects.list(
      'discovery.k8s.io/v1',
      'EndpointSlice',
      'default',
      undefined,
      undefined,
      undefined,
      undefined,
      'kubernetes.io/service-name=web',
    );
    expect(slices.items.map((s) => s.metadata?.name)).toEqual(['web-1']);
    await objects.delete(spec);
    expect(server.store.list(spec).items).toEqual([]);
  });

  it('sends BOOKMARK events only when allowed, carrying the current resourceVersion', async () => {
    const withBookmarks = await rawWatch(server.url, '/api/v1/namespaces/default/configmaps', {
      allowWatchBookmarks: 'true',
      resourceVersion: server.store.resourceVersion(),
    });
    try {
      await waitFor(() => withBookmarks.events.some((e) => e.type === 'BOOKMARK'), 'a bookmark');
      const bookmark = withBookmarks.events.find((e) => e.type === 'BOOKMARK');
      expect(bookmark?.object.kind).toBe('ConfigMap');
      expect(bookmark?.object.metadata?.resourceVersion).toBe(server.store.resourceVersion());
    } finally {
      withBookmarks.close();
    }
    const without = await rawWatch(server.url, '/api/v1/namespaces/default/configmaps', {
      resourceVersion: server.store.resourceVersion(),
      timeoutSeconds: '1',
    });
    await without.ended;
    expect(without.events).toEqual([]);
  });

  it('ends initial events with the initial-events-end bookmark when sendInitialEvents=true', async () => {
    const watch = await rawWatch(server.url, '/api/v1/namespaces', {
      sendInitialEvents: 'true',
      resourceVersionMatch: 'NotOlderThan',
      allowWatchBookmarks: 'true',
    });
    try {
      await waitFor(() => watch.events.some((e) => e.type === 'BOOKMARK'), 'the initial-events-end bookmark');
      const end = watch.events.findIndex((e) => e.type === 'BOOKMARK');
      expect(watch.events[end].object.metadata?.annotations).toEqual({ 'k8s.io/initial-events-end': 'true' });
      expect(watch.events.slice(0, end).map((e) => e.type)).toEqual(Array(end).fill('ADDED'));
      expect(watch.events.slice(0, end).map((e) => e.object.metadata?.name)).toEqual(
        server.store.list({ apiVersion: 'v1', kind: 'Namespace' }).items.map((n) => n.metadata?.name),
      );
    } finally {
      watch.close();
    }
  });

  it('turns selector transitions into ADDED/DELETED on a filtered watch', async () => {
    const ref = { apiVersion: 'v1', kind: 'ConfigMap' };
    const watch = await rawWatch(server.url, '/api/v1/namespaces/default/configmaps', {
      labelSelector: 'watched=yes',
      resourceVersion: server.store.resourceVersion(),
    });
    try {
      server.store.create({ ...ref, metadata: { name: 'flip' } });
      server.store.apply({ ...ref, metadata: { name: 'flip', labels: { watched: 'yes' } } });
      server.store.apply({ ...ref, metadata: { name: 'flip', labels: { watched: 'yes', more: '1' } } });
      server.store.apply({ ...ref, metadata: { name: 'flip', labels: { watched: 'no' } } });
      await waitFor(() => watch.events.length === 3, 'three events');
      expect(watch.events.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED', 'DELETED']);
    } finally {
      watch.close();
    }
    await waitFor(() => server.store.watcherCount === 0, 'the closed watch to unregister');
  });
});

describe('client-node informers', () => {
  let server: KubeApiServer;
  const ref = { apiVersion: 'v1', kind: 'ConfigMap' };
  const historyWindow = 3;

  beforeAll(async () => {
    server = await startKubeApiServer({ historyWindow });
  });
  afterAll(() => server?.close());

  it('answers a watch from a version older than the history window with a 410 Expired ERROR event', async () => {
    const from = server.store.resourceVersion();
    for (let i = 0; i <= historyWindow; i++) server.store.create({ ...ref, metadata: { name: `old-${i}` } });
    const expiredWatch = await rawWatch(server.url, '/api/v1/namespaces/default/configmaps', {
      resourceVersion: from,
    });
    await expiredWatch.ended;
    expect(expiredWatch.status).toBe(200);
    expect(expiredWatch.events).toEqual([
      { type: 'ERROR', object: expect.objectContaining({ kind: 'Status', code: 410, reason: 'Expired' }) },
    ]);

    const recent = Number(server.store.resourceVersion()) - 2;
    const resumed = await rawWatch(server.url, '/api/v1/namespaces/default/configmaps', {
      resourceVersion: String(recent),
    });
    try {
      await waitFor(() => resumed.events.length === 2, 'the two events after the requested version');
      expect(resumed.events.map((e) => [e.type, e.object.metadata?.name])).toEqual([
        ['ADDED', `old-${historyWindow - 1}`],
        ['ADDED', `old-${historyWindow}`],
      ]);
    } finally {
      resumed.close();
    }
  });

  it('sees add/update/delete, and relists after a forced 410', async () => {
    const kc = clientFor(server);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'informed' } } });
    let lists = 0;
    const informer = k8s.makeInformer(kc, '/api/v1/namespaces/informed/configmaps', () => {
      lists += 1;
      return core.listNamespacedConfigMap({ namespace: 'informed' });
    });
    const seen: string[] = [];
    informer.on('add', (o) => seen.push(`add ${o.metadata?.name}`));
    informer.on('update', (o) => seen.push(`update ${o.metadata?.name} ${o.data?.v}`));
    informer.on('delete', (o) => seen.push(`delete ${o.metadata?.name}`));
    const errors: unknown[] = [];
    informer.on('error', (e) => errors.push(e));
    const cm = (name: string, v: string) => ({
      ...ref,
      metadata: { name, namespace: 'informed' },
      data: { v },
    });
    try {
      await informer.start();
      await core.createNamespacedConfigMap({ namespace: 'informed', body: cm('a', '1') });
      await core.createNamespacedConfigMap({ namespace: 'informed', body: cm('b', '1') });
      await core.replaceNamespacedConfigMap({ name: 'a', namespace: 'informed', body: cm('a', '2') });
      await core.deleteNamespacedConfigMap({ name: 'b', namespace: 'informed' });
      await waitFor(() => seen.length === 4, 'four informer events');
      expect(seen).toEqual(['add a', 'add b', 'update a 2', 'delete b']);
      expect(lists).toBe(1);

      // Drop the watch and, before the informer can reconnect, make more changes than the
      // history keeps: its resume must get 410 and it must relist to catch up.
      server.dropWatches();
      server.store.apply(cm('a', '3'));
      server.store.create(cm('c', '1'));
      for (let i = 0; i < historyWindow; i++)
        server.store.create({ ...ref, metadata: { name: `filler-${i}` } });
      server.store.delete(ref, 'informed', 'a');

      await waitFor(() => seen.length === 6, 'the events of the relist');
      expect(seen.slice(4).sort()).toEqual(['add c', 'delete a']);
      expect(lists).toBe(2);
      expect(informer.list().map((o) => o.metadata?.name)).toEqual(['c']);
      expect(errors).toEqual([]);

      await core.createNamespacedConfigMap({ namespace: 'informed', body: cm('d', '1') });
      await waitFor(() => seen.length === 7, 'an event after the relist');
      expect(seen[6]).toBe('add d');
    } finally {
      await informer.stop();
    }
  });
});

describe('bearer-token auth', () => {
  let server: KubeApiServer;
  beforeAll(async () => {
    server = await startKubeApiServer({ token: 'lab-secret' });
  });
  afterAll(() => server?.close());

  it('accepts the kubeconfig token and refuses requests without it', async () => {
    const core = clientFor(server).makeApiClient(k8s.CoreV1Api);
    expect((await core.listNamespace()).items.length).toBeGreaterThan(0);
    const anonymous = await fetch(`${server.url}/api/v1/namespaces`);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ kind: 'Status', reason: 'Unauthorized', code: 401 });
  });
});

describe('HTTPS', () => {
  let server: KubeApiServer | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'lab-kube-apiserver-tls-'));
  afterAll(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves TLS with the given certificate and writes its CA into the kubeconfig', async () => {
    const [cert, key] = [join(dir, 'server.crt'), join(dir, 'server.key')];
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=lab-kube-apiserver',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    const pem = readFileSync(cert, 'utf8');
    server = await startKubeApiServer({ tls: { cert: pem, key: readFileSync(key, 'utf8'), ca: pem } });
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(server.kubeconfig()).not.toContain('insecure-skip-tls-verify');
    const core = clientFor(server).makeApiClient(k8s.CoreV1Api);
    expect((await core.readNamespace({ name: 'default' })).metadata?.name).toBe('default');
  });
});
