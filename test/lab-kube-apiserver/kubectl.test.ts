/** The real kubectl (v1.34) and Helm 4 against the lab's API server, through a kubeconfig the server wrote. */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { type KubeApiServer, startKubeApiServer } from '../../lab/kube-apiserver/server.js';
import type { KubeObject } from '../../lab/kube-apiserver/store.js';
import { waitFor } from './helpers.js';

const KUBECTL = resolve('.tools/kubectl');
const HELM = resolve('.tools/helm');
const SERVICE = { apiVersion: 'v1', kind: 'Service' };
const DEPLOYMENT = { apiVersion: 'apps/v1', kind: 'Deployment' };
const CONFIGMAP = { apiVersion: 'v1', kind: 'ConfigMap' };

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

describe('kubectl against the lab API server', () => {
  let server: KubeApiServer;
  let dir: string;
  const children: ChildProcess[] = [];

  // Keeps kubectl's and helm's caches and config inside the test directory.
  const toolEnv = () => ({
    ...process.env,
    HOME: dir,
    XDG_CACHE_HOME: join(dir, 'xdg'),
    XDG_CONFIG_HOME: join(dir, 'xdg'),
    XDG_DATA_HOME: join(dir, 'xdg'),
  });
  const args = (...rest: string[]) => [
    '--kubeconfig',
    join(dir, 'kubeconfig'),
    '--cache-dir',
    join(dir, 'cache'),
    ...rest,
  ];
  const kubectl = async (...rest: string[]): Promise<Result> => {
    try {
      const { stdout, stderr } = await promisify(execFile)(KUBECTL, args(...rest), { env: toolEnv() });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  };
  const ok = async (...rest: string[]): Promise<string> => {
    const result = await kubectl(...rest);
    if (result.code !== 0) throw new Error(`kubectl ${rest.join(' ')} failed: ${result.stderr}`);
    return result.stdout;
  };
  const manifest = (name: string, objects: object[]) => {
    const path = join(dir, name);
    writeFileSync(path, objects.map((o) => JSON.stringify(o)).join('\n---\n'));
    return path;
  };
  const stored = (
    ref: { apiVersion: string; kind: string },
    name: string,
    namespace = 'default',
  ): KubeObject => server.store.get(ref, namespace, name);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lab-kube-apiserver-'));
    server = await startKubeApiServer();
    writeFileSync(join(dir, 'kubeconfig'), server.kubeconfig('lab-test'));
  });
  afterAll(async () => {
    children.forEach((child) => child.kill('SIGKILL'));
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('gets lists and single objects, with selectors', async () => {
    expect((await ok('get', 'namespaces', '-o', 'name')).split('\n')).toEqual(
      expect.arrayContaining(['namespace/default', 'namespace/kube-system']),
    );
    server.store.create({
      ...SERVICE,
      metadata: { name: 'one', labels: { app: 'x' } },
      spec: { ports: [{ port: 1 }] },
    });
    server.store.create({
      ...SERVICE,
      metadata: { name: 'two', labels: { app: 'y' } },
      spec: { ports: [{ port: 2 }] },
    });
    expect(await ok('get', 'svc', '-l', 'app in (x)', '-o', 'name')).toBe('service/one\n');
    expect(
      await ok(
        'get',
        'services',
        '--field-selector',
        'metadata.name=two',
        '-o',
        'jsonpath={.items[*].spec.ports[0].port}',
      ),
    ).toBe('2');
    expect(await ok('get', 'service', 'one', '-o', 'jsonpath={.metadata.uid}')).toBe(
      stored(SERVICE, 'one').metadata?.uid,
    );
    expect(await ok('get', 'svc')).toMatch(/^NAME\s+AGE\none\s+\S+\ntwo\s+\S+\n$/);
    const missing = await kubectl('get', 'svc', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('Error from server (NotFound): services "nope" not found');
  });

  it('applies manifests client-side: create, then a strategic merge that keeps keyed lists', async () => {
    const deployment = (image: string, env: string) => ({
      ...DEPLOYMENT,
      metadata: { name: 'web' },
      spec: {
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: {
            containers: [
              { name: 'web', image, env: [{ name: 'MODE', value: env }] },
              { name: 'sidecar', image: 'proxy' },
            ],
          },
        },
      },
    });
    const service = (port: number) => ({
      ...SERVICE,
      metadata: { name: 'web' },
      spec: { ports: [{ name: 'http', port }], selector: { app: 'web' } },
    });
    const serviceExport = {
      apiVersion: 'multicluster.x-k8s.io/v1alpha1',
      kind: 'ServiceExport',
      metadata: { name: 'web' },
    };

    const first = await ok(
      'apply',
      '-f',
      manifest('v1.yaml', [service(80), deployment('web:1', 'a'), serviceExport]),
    );
    expect(first).toContain('service/web created');
    expect(first).toContain('deployment.apps/web created');
    expect(first).toContain('serviceexport.multicluster.x-k8s.io/web created');

    const second = await ok(
      'apply',
      '-f',
      manifest('v2.yaml', [service(8080), deployment('web:2', 'b'), serviceExport]),
    );
    expect(second).toContain('service/web configured');
    expect(second).toContain('deployment.apps/web configured');
    expect(second).toContain('serviceexport.multicluster.x-k8s.io/web unchanged');

    const web = stored(DEPLOYMENT, 'web') as {
      spec: { template: { spec: { containers: object[] } } };
      metadata: { generation: number };
    };
    expect(web.spec.template.spec.containers).toEqual([
      { name: 'web', image: 'web:2', env: [{ name: 'MODE', value: 'b' }] },
      { name: 'sidecar', image: 'proxy' },
    ]);
    expect(web.metadata.generation).toBe(2);
    expect((stored(SERVICE, 'web') as { spec: { ports: object[] } }).spec.ports).toEqual([
      { name: 'http', port: 8080 },
    ]);
    expect(
      stored(SERVICE, 'web').metadata?.annotations?.['kubectl.kubernetes.io/last-applied-configuration'],
    ).toContain('8080');
  });

  it('annotates, labels and patches (strategic, merge, json)', async () => {
    server.store.create({ ...CONFIGMAP, metadata: { name: 'tweak' }, data: { a: '1' } });
    await ok('annotate', 'configmap', 'tweak', 'service.cilium.io/global=true');
    await ok('label', 'configmap', 'tweak', 'tier=front');
    expect(stored(CONFIGMAP, 'tweak').metadata).toMatchObject({
      annotations: { 'service.cilium.io/global': 'true' },
      labels: { tier: 'front' },
    });
    expect(
      (await kubectl('annotate', 'configmap', 'tweak', 'service.cilium.io/global=false')).stderr,
    ).toContain('--overwrite');
    await ok('annotate', 'configmap', 'tweak', 'service.cilium.io/global-');
    expect(stored(CONFIGMAP, 'tweak').metadata?.annotations ?? {}).toEqual({});

    await ok('patch', 'configmap', 'tweak', '-p', '{"data":{"b":"2"}}');
    await ok('patch', 'configmap', 'tweak', '--type=merge', '-p', '{"data":{"a":null}}');
    await ok(
      'patch',
      'configmap',
      'tweak',
      '--type=json',
      '-p',
      '[{"op":"add","path":"/data/c","value":"3"}]',
    );
    expect(stored(CONFIGMAP, 'tweak').data).toEqual({ b: '2', c: '3' });
    const failed = await kubectl(
      'patch',
      'configmap',
      'tweak',
      '--type=json',
      '-p',
      '[{"op":"test","path":"/data/b","value":"9"}]',
    );
    expect(failed.code).toBe(1);
    expect(stored(CONFIGMAP, 'tweak').data).toEqual({ b: '2', c: '3' });
  });

  it('creates from files and with the typed generators (protobuf bodies)', async () => {
    await ok(
      'create',
      '-f',
      manifest('lease.yaml', [
        {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: 'leader' },
          spec: { holderIdentity: 'me' },
        },
      ]),
    );
    expect(stored({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease' }, 'leader').spec).toEqual({
      holderIdentity: 'me',
    });
    await ok('create', 'namespace', 'made');
    await ok('create', 'configmap', 'conf', '-n', 'made', '--from-literal=k=v', '--from-literal=x=y');
    await ok(
      'create',
      'secret',
      'generic',
      'creds',
      '-n',
      'made',
      '--from-literal=password=hunter2',
      '--type=example.com/creds',
    );
    await ok('create', 'serviceaccount', 'robot', '-n', 'made');
    expect(stored(CONFIGMAP, 'conf', 'made').data).toEqual({ k: 'v', x: 'y' });
    const secret = stored({ apiVersion: 'v1', kind: 'Secret' }, 'creds', 'made') as {
      data: Record<string, string>;
      type: string;
    };
    expect(Buffer.from(secret.data.password, 'base64').toString()).toBe('hunter2');
    expect(secret.type).toBe('example.com/creds');
    expect(stored({ apiVersion: 'v1', kind: 'ServiceAccount' }, 'robot', 'made').metadata?.name).toBe(
      'robot',
    );
    const again = await kubectl('create', 'namespace', 'made');
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('AlreadyExists');
  });

  it('deletes objects, and a namespace with its contents', async () => {
    server.store.create({ ...CONFIGMAP, metadata: { name: 'doomed' } });
    expect(await ok('delete', 'configmap', 'doomed')).toContain('configmap "doomed" deleted');
    expect(() => stored(CONFIGMAP, 'doomed')).toThrow('not found');
    const missing = await kubectl('delete', 'configmap', 'doomed');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('NotFound');

    server.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'gone' } });
    server.store.create({ ...CONFIGMAP, metadata: { name: 'inside', namespace: 'gone' } });
    await ok('delete', 'namespace', 'gone');
    expect(server.store.list(CONFIGMAP, { namespace: 'gone' }).items).toEqual([]);
  });

  it('streams changes with get -w', async () => {
    server.store.create({ ...CONFIGMAP, metadata: { name: 'watched-0' } });
    const child = spawn(KUBECTL, args('get', 'configmaps', '-w', '-o', 'name'), { env: toolEnv() });
    children.push(child);
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await waitFor(() => output.includes('configmap/watched-0'), 'the initial listing');
    await waitFor(() => server.store.watcherCount > 0, 'kubectl to start watching');
    server.store.create({ ...CONFIGMAP, metadata: { name: 'watched-1' } });
    await waitFor(() => output.includes('configmap/watched-1'), 'the watched creation');
    child.kill('SIGTERM');
  });

  it('installs, upgrades and uninstalls a Helm 4 chart (server-side apply, protobuf Secrets)', async () => {
    const chart = join(dir, 'chart');
    mkdirSync(join(chart, 'templates'), { recursive: true });
    writeFileSync(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: demo\nversion: 0.1.0\n');
    const template = [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'demo' } },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: 'demo' },
        rules: [{ apiGroups: [''], resources: ['services'], verbs: ['list'] }],
      },
      {
        apiVersion: 'apps/v1',
        kind: 'DaemonSet',
        metadata: { name: 'demo' },
        spec: {
          selector: { matchLabels: { app: 'demo' } },
          template: {
            metadata: { labels: { app: 'demo' } },
            spec: { containers: [{ name: 'demo', image: 'demo:{{ .Values.tag }}' }] },
          },
        },
      },
    ];
    writeFileSync(
      join(chart, 'templates', 'all.yaml'),
      template.map((o) => JSON.stringify(o)).join('\n---\n'),
    );
    const helm = (...rest: string[]) =>
      promisify(execFile)(HELM, ['--kubeconfig', join(dir, 'kubeconfig'), '-n', 'kube-system', ...rest], {
        env: toolEnv(),
      });
    const daemonSet = { apiVersion: 'apps/v1', kind: 'DaemonSet' };
    const image = () =>
      (
        server.store.get(daemonSet, 'kube-system', 'demo') as {
          spec: { template: { spec: { containers: Array<{ image: string }> } } };
        }
      ).spec.template.spec.containers[0].image;

    await helm('install', 'demo', chart, '--set', 'tag=1');
    expect(image()).toBe('demo:1');
    await helm('upgrade', 'demo', chart, '--set', 'tag=2');
    expect(image()).toBe('demo:2');
    expect((await helm('list', '-o', 'json')).stdout).toContain('"status":"deployed"');
    await helm('uninstall', 'demo');
    expect(server.store.list(daemonSet).items).toEqual([]);
    expect(
      server.store.list({ apiVersion: 'v1', kind: 'Secret' }, { labelSelector: 'owner=helm' }).items,
    ).toEqual([]);
  });
});
