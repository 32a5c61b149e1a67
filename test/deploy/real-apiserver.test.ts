/**
 * The chart on the official kube-apiserver (RBAC on): every rendered object is accepted and reads
 * back as rendered, and each daemon syncs with nothing but its own ServiceAccount's token, so the
 * chart's RBAC is checked by the real authorizer running the daemons' real calls.
 */
import { CoreV1Api, KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { LocalInformers } from '../../agent/local/informers.js';
import { ApiserverDaemon } from '../../clustermesh-apiserver/daemon.js';
import { ADMIN_USER } from '../../lib/kvstore/users.js';
import { EtcdHarness } from '../harness/etcd.js';
import { kubeBinariesRequirement, startKubeApiServer, type KubeApiServer } from '../harness/kube-apiserver.js';
import { describeRequiring } from '../harness/requirements.js';
import { REPO_ROOT, SYSTEM_NAMESPACE, parseManifests, renderCluster, type K8sObject } from './chart-fixtures.js';

/** The rendered object as plain JSON (the server adds defaults, metadata and status around it). */
function asRendered(object: K8sObject): Record<string, unknown> {
  return JSON.parse(JSON.stringify(object));
}

const SYNC_TIMEOUT_MS = 20_000;

function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${SYNC_TIMEOUT_MS / 1000} s`)), SYNC_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describeRequiring('the chart on the official kube-apiserver', [kubeBinariesRequirement()], () => {
  let kube: KubeApiServer;

  beforeAll(async () => {
    kube = await startKubeApiServer({ serviceCIDRs: ['10.111.0.0/16'] });
    const objects = renderCluster('east', ['--set', 'createNamespace=true']);
    for (const object of [...objects].sort((a, b) => Number(b.kind === 'Namespace') - Number(a.kind === 'Namespace'))) {
      const created = await kube.objects.create(object as KubernetesObject);
      expect(created.metadata?.uid).toBeTruthy();
      const read = await kube.objects.get(object, object.metadata.namespace, object.metadata.name);
      expect(read).toMatchObject(asRendered(object));
    }
  }, 120_000);
  afterAll(async () => {
    await kube?.close();
  });

  /** A kubeconfig that authenticates as `serviceAccount` of the chart's namespace, by a bound token. */
  async function serviceAccountConfig(serviceAccount: string): Promise<KubeConfig> {
    const core = kube.kubeConfig().makeApiClient(CoreV1Api);
    const token = await core.createNamespacedServiceAccountToken({
      name: serviceAccount,
      namespace: SYSTEM_NAMESPACE,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    const kc = new KubeConfig();
    const admin = kube.kubeConfig().getCurrentCluster()!;
    kc.loadFromOptions({
      clusters: [{ name: 'east', server: admin.server, caData: admin.caData }],
      users: [{ name: serviceAccount, token: token.status!.token }],
      contexts: [{ name: 'east', cluster: 'east', user: serviceAccount }],
      currentContext: 'east',
    });
    return kc;
  }

  it('the agent lists and watches what it needs with its own token', async () => {
    const informers = new LocalInformers({
      kubeConfig: await serviceAccountConfig('clustermesh-agent'),
      log: pino({ level: 'silent' }),
      metrics: new Registry(),
    });
    try {
      await within(informers.start(), 'the agent informers syncing');
      expect(informers.synced()).toBe(true);
    } finally {
      await informers.stop();
    }
  }, 60_000);

  it('the clustermesh-apiserver syncs to etcd with its own token', async () => {
    const etcd = await EtcdHarness.start();
    const daemon = new ApiserverDaemon({
      cluster: { name: 'east', id: 1 },
      etcd: await etcd.clientConfig(ADMIN_USER),
      kubeConfig: await serviceAccountConfig('clustermesh-apiserver'),
      healthAddr: { host: '127.0.0.1', port: 0 },
      globalNamespacesDefault: true,
      namespace: SYSTEM_NAMESPACE,
      logger: pino({ level: 'warn' }),
    });
    try {
      await daemon.start();
      await within(daemon.ready, 'the clustermesh-apiserver becoming ready');
    } finally {
      await daemon.stop();
      await etcd.stop();
    }
  }, 60_000);

  it('accepts the kind failover scenario manifests', async () => {
    for (const file of ['echo.yaml', 'client.yaml']) {
      for (const object of parseManifests(readFileSync(join(REPO_ROOT, 'e2e/kind/manifests', file), 'utf8'))) {
        const created = await kube.objects.create(object as KubernetesObject);
        expect(created.metadata?.uid).toBeTruthy();
      }
    }
  });

  it('refuses a second install over the first (409 Conflict)', async () => {
    const [configMap] = renderCluster('east').filter((o) => o.kind === 'ConfigMap');
    await expect(kube.objects.create(configMap as KubernetesObject)).rejects.toMatchObject({ code: 409 });
  });
});
