/**
 * Every object the chart renders (and the kind scenario's manifests) is accepted by a Kubernetes
 * API server and reads back unchanged, created through @kubernetes/client-node as the CLI does.
 * The server is the lab's stand-in (no kube-apiserver binary installs here), served over TLS with
 * a CA of the project's PKI because client-node refuses plain HTTP.
 */
import { KubeConfig, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startKubeApiServer, type KubeApiServer } from '../../lab/kube-apiserver/server.js';
import { createCA, issueServerCert } from '../../lib/pki.js';
import { CLUSTERS, REPO_ROOT, parseManifests, renderCluster, type K8sObject } from './chart-fixtures.js';

// Namespaces first, as kubectl apply and the CLI order them.
function inCreationOrder(objects: K8sObject[]): K8sObject[] {
  return [...objects].sort((a, b) => Number(b.kind === 'Namespace') - Number(a.kind === 'Namespace'));
}

/** What the object said before the server added metadata (uid, resourceVersion, …) and status. */
function asCreated(object: KubernetesObject): Record<string, unknown> {
  const { metadata, ...rest } = object as K8sObject;
  const { name, namespace, labels, annotations } = metadata as Record<string, unknown>;
  const fields = Object.fromEntries(Object.entries(rest).filter(([field]) => field !== 'status'));
  return JSON.parse(JSON.stringify({ ...fields, metadata: { name, namespace, labels, annotations } }));
}

describe.each(CLUSTERS)('the %s chart and scenario in a Kubernetes API server', (cluster) => {
  let server: KubeApiServer;
  let api: KubernetesObjectApi;

  beforeAll(async () => {
    const ca = await createCA(`deploy-test-${cluster}`);
    const serving = await issueServerCert(ca, { commonName: 'kube-apiserver', ipAddresses: ['127.0.0.1'] });
    server = await startKubeApiServer({
      tls: { cert: serving.certPem, key: serving.keyPem, ca: ca.certPem },
    });
    const config = new KubeConfig();
    config.loadFromString(server.kubeconfig(`kind-${cluster}`));
    api = KubernetesObjectApi.makeApiClient(config);
  });
  afterAll(async () => {
    await server?.close();
  });

  async function createAndReadBack(objects: K8sObject[]): Promise<void> {
    for (const object of inCreationOrder(objects)) {
      const created = await api.create(object as KubernetesObject);
      expect(created.metadata?.uid).toBeTruthy();
      const read = await api.read({
        apiVersion: object.apiVersion,
        kind: object.kind,
        metadata: { name: object.metadata.name, namespace: object.metadata.namespace },
      });
      expect(asCreated(read)).toEqual(asCreated(object as KubernetesObject));
    }
  }

  it('creates every rendered object, each reading back as rendered', async () => {
    const objects = renderCluster(cluster, ['--set', 'createNamespace=true']);
    expect(new Set(objects.map((o) => o.kind))).toEqual(
      new Set([
        'Namespace',
        'ServiceAccount',
        'ConfigMap',
        'ClusterRole',
        'ClusterRoleBinding',
        'Role',
        'RoleBinding',
        'Service',
        'Deployment',
        'DaemonSet',
      ]),
    );
    await createAndReadBack(objects);
  });

  it('creates the failover scenario manifests', async () => {
    const files = cluster === 'east' ? ['echo.yaml', 'client.yaml'] : ['echo.yaml'];
    const objects = files.flatMap((file) =>
      parseManifests(readFileSync(join(REPO_ROOT, 'e2e/kind/manifests', file), 'utf8')),
    );
    await createAndReadBack(objects);
  });

  it('refuses a second install over the first (409 Conflict), as a real server would', async () => {
    const [configMap] = renderCluster(cluster).filter((o) => o.kind === 'ConfigMap');
    await expect(api.create(configMap as KubernetesObject)).rejects.toMatchObject({ code: 409 });
  });
});
