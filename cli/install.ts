/**
 * `clustermesh install`: the PKI and identity of one cluster (Secrets + the clustermesh-config
 * ConfigMap; what the lab calls without the chart), then the Helm chart rendered by the real helm
 * and applied object by object, then a wait with visible progress.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { ADMIN_USER } from '../lib/kvstore/users.js';
import { UserError, errorMessage } from '../lib/errors.js';
import { clusterIDProblem, clusterNameProblem } from '../lib/kvstore/codecs.js';
import { type CertifiedKey, createCA, issueClientCert, issueServerCert } from '../lib/pki.js';
import { assertUsableCa } from './ca.js';
import {
  type Cluster,
  configMapObject,
  ensureNamespace,
  kubeCall,
  nodeInternalIPs,
  readConfigMapData,
  readObject,
  readSecretData,
  refOf,
  secretObject,
  upsertObject,
} from './kube.js';

export const CA_SECRET = 'clustermesh-ca';
export const SERVER_CERT_SECRET = 'clustermesh-apiserver-server-cert';
export const ADMIN_CERT_SECRET = 'clustermesh-apiserver-admin-cert';
export const REMOTES_SECRET = 'clustermesh-remotes';
export const CONFIG_MAP = 'clustermesh-config';
/** Where the chart mounts the remotes Secret in agent pods; the lab records its own in the ConfigMap. */
export const DEFAULT_REMOTES_MOUNT_DIR = '/var/lib/clustermesh/remotes';
export const APISERVER_SERVICE = 'clustermesh-apiserver';
const NODE_PORT_BASE = 32378;

export interface ClusterIdentity {
  name: string;
  id: number;
}

/** Validates a name and an ID given as text (flags, ConfigMaps) with the kvstore's own rules. */
export function parseClusterIdentity(name: string, idText: string, where = ''): ClusterIdentity {
  const id = /^\d+$/.test(idText.trim()) ? Number(idText) : NaN;
  const nameProblem = clusterNameProblem(name);
  if (nameProblem) throw new UserError(`${where}cluster name "${name}" ${nameProblem}`);
  const idProblem = clusterIDProblem(id);
  if (idProblem) throw new UserError(`${where}cluster ID "${idText}" ${idProblem}`);
  return { name, id };
}

export function parseNodePort(text: string | undefined, clusterId: number): number {
  if (text === undefined) return NODE_PORT_BASE + clusterId;
  const port = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(port >= 30000 && port <= 32767))
    throw new UserError(`--node-port ${text} must be a NodePort from 30000 to 32767`);
  return port;
}

export interface BootstrapOptions {
  namespace: string;
  identity: ClusterIdentity;
  nodePort: number;
  /** a CA to use (--ca-from); default: the cluster's existing one, else a new one */
  ca?: CertifiedKey;
  /** extra ConfigMap keys (the lab: remotes-mount-dir, apiserver-health-url) */
  extraConfig?: Record<string, string>;
  progress?: (line: string) => void;
}

export interface ClusterPki {
  ca: CertifiedKey;
  server: CertifiedKey;
  admin: CertifiedKey;
}

/**
 * Creates or updates the certificate Secrets and the clustermesh-config ConfigMap. Idempotent:
 * an existing CA is reused, so certificates issued to peers stay valid. Refuses to rename or
 * renumber an installed cluster.
 */
export async function bootstrapCluster(cluster: Cluster, opts: BootstrapOptions): Promise<ClusterPki> {
  const { namespace, identity } = opts;
  const progress = opts.progress ?? (() => undefined);
  await assertSameIdentity(cluster, namespace, identity);
  const ca = await chooseCa(cluster, namespace, identity, opts.ca);
  progress(`installing clustermesh in ${cluster.context} as ${identity.name} (ID ${identity.id})`);
  const nodeIPs = (await nodeInternalIPs(cluster)).map((n) => n.ip);
  const server = await issueServerCert(ca, {
    commonName: `clustermesh-apiserver.${identity.name}`,
    ipAddresses: [...new Set(['127.0.0.1', ...nodeIPs])],
    dnsNames: [`${APISERVER_SERVICE}.${namespace}.svc`, 'localhost'],
  });
  const admin = await issueClientCert(ca, { commonName: ADMIN_USER });
  await ensureNamespace(cluster, namespace);
  const objects = [
    secretObject(namespace, CA_SECRET, { 'ca.crt': ca.certPem, 'ca.key': ca.keyPem }),
    secretObject(namespace, SERVER_CERT_SECRET, tlsData(ca, server)),
    secretObject(namespace, ADMIN_CERT_SECRET, tlsData(ca, admin)),
    configMapObject(namespace, CONFIG_MAP, {
      'cluster-name': identity.name,
      'cluster-id': String(identity.id),
      'etcd-service': APISERVER_SERVICE,
      'etcd-node-port': String(opts.nodePort),
      'remotes-secret': REMOTES_SECRET,
      ...opts.extraConfig,
    }),
  ];
  for (const object of objects) {
    await upsertObject(cluster, object);
    progress(`wrote ${object.kind} ${namespace}/${object.metadata?.name}`);
  }
  return { ca, server, admin };
}

function tlsData(ca: CertifiedKey, pair: CertifiedKey): Record<string, string> {
  return { 'tls.crt': pair.certPem, 'tls.key': pair.keyPem, 'ca.crt': ca.certPem };
}

async function assertSameIdentity(cluster: Cluster, namespace: string, identity: ClusterIdentity): Promise<void> {
  const config = await readConfigMapData(cluster, namespace, CONFIG_MAP);
  if (!config) return;
  const installed = `${config['cluster-name']} (ID ${config['cluster-id']})`;
  if (config['cluster-name'] !== identity.name || config['cluster-id'] !== String(identity.id)) {
    throw new UserError(
      `context ${cluster.context} is already installed as cluster ${installed}; keep that name and ID, or uninstall first (delete namespace ${namespace})`,
    );
  }
}

async function chooseCa(
  cluster: Cluster,
  namespace: string,
  identity: ClusterIdentity,
  given: CertifiedKey | undefined,
): Promise<CertifiedKey> {
  const existing = await readClusterCa(cluster, namespace);
  if (existing && given && existing.certPem.trim() !== given.certPem.trim()) {
    throw new UserError(
      `context ${cluster.context} already has a different CA in Secret ${namespace}/${CA_SECRET}; drop --ca-from or delete that Secret first (peers then need connect again)`,
    );
  }
  return existing ?? given ?? (await createCA(`clustermesh ${identity.name} CA`));
}

/** The cluster's CA from its clustermesh-ca Secret, checked; undefined when absent. */
export async function readClusterCa(cluster: Cluster, namespace: string): Promise<CertifiedKey | undefined> {
  const data = await readSecretData(cluster, namespace, CA_SECRET);
  if (!data) return undefined;
  const where = `context ${cluster.context}: Secret ${namespace}/${CA_SECRET}`;
  if (!data['ca.crt'] || !data['ca.key']) throw new UserError(`${where} lacks ca.crt or ca.key; run clustermesh install again`);
  return assertUsableCa({ certPem: data['ca.crt'], keyPem: data['ca.key'] }, where);
}

// --- the chart --------------------------------------------------------------------------------------

/** The directory holding this package's package.json (works from cli/ under ts-jest and dist/cli/). */
export function packageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'deploy'))) return dir;
  }
  throw new Error(`cannot find the clustermesh package root above ${from}`);
}

/** helm from .tools/ (scripts/setup.sh unpacks it there), else from PATH. */
export function helmBinary(root: string = packageRoot()): string {
  const bundled = join(root, '.tools', 'helm');
  return existsSync(bundled) ? bundled : 'helm';
}

export interface ChartValues {
  namespace: string;
  identity: ClusterIdentity;
  nodePort: number;
}

export async function renderChart(values: ChartValues): Promise<KubernetesObject[]> {
  const root = packageRoot();
  const args = [
    'template',
    'clustermesh',
    join(root, 'deploy', 'helm', 'clustermesh'),
    '--namespace',
    values.namespace,
    '--set',
    `cluster.name=${values.identity.name}`,
    '--set',
    `cluster.id=${values.identity.id}`,
    '--set',
    `apiserver.service.nodePort=${values.nodePort}`,
    '--set',
    'createNamespace=true',
  ];
  let stdout: string;
  try {
    ({ stdout } = await promisify(execFile)(helmBinary(root), args, { maxBuffer: 16 * 1024 * 1024 }));
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim().split('\n')[0];
    throw new UserError(`helm template failed: ${stderr || errorMessage(err)} (run npm run setup for .tools/helm)`);
  }
  return parseAllDocuments(stdout)
    .map((doc) => doc.toJS() as KubernetesObject | null)
    .filter((obj): obj is KubernetesObject => obj !== null && typeof obj === 'object' && !!obj.kind);
}

/** Namespaces first, so namespaced objects always have theirs. */
export function applyOrder(objects: KubernetesObject[]): KubernetesObject[] {
  return [...objects].sort((a, b) => Number(b.kind === 'Namespace') - Number(a.kind === 'Namespace'));
}

export async function applyObjects(
  cluster: Cluster,
  objects: KubernetesObject[],
  progress: (line: string) => void,
): Promise<void> {
  for (const object of applyOrder(objects)) {
    await upsertObject(cluster, object);
    const ref = refOf(object);
    progress(`applied ${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`);
  }
}

type Workload = KubernetesObject & {
  status?: {
    readyReplicas?: number;
    replicas?: number;
    numberReady?: number;
    desiredNumberScheduled?: number;
  };
};

/** Ready counts of the apiserver Deployment and agent DaemonSet, as one progress line; ready or not. */
export async function installProgress(
  cluster: Cluster,
  namespace: string,
): Promise<{ ready: boolean; line: string }> {
  const deploy = await readObject<Workload>(cluster, {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    namespace,
    name: 'clustermesh-apiserver',
  });
  const daemonset = await readObject<Workload>(cluster, {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    namespace,
    name: 'clustermesh-agent',
  });
  const apiReady = deploy?.status?.readyReplicas ?? 0;
  const apiWanted = deploy?.status?.replicas ?? 1;
  const agentsReady = daemonset?.status?.numberReady ?? 0;
  const agentsWanted = daemonset?.status?.desiredNumberScheduled ?? 0;
  return {
    ready: apiReady >= apiWanted && apiReady > 0 && agentsWanted > 0 && agentsReady >= agentsWanted,
    line: `clustermesh-apiserver ${apiReady}/${apiWanted} ready, clustermesh-agent ${agentsReady}/${agentsWanted} ready`,
  };
}

export async function waitInstalled(
  cluster: Cluster,
  namespace: string,
  timeoutMs: number,
  progress: (line: string) => void,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const state = await installProgress(cluster, namespace);
    if (state.line !== last) progress((last = state.line));
    if (state.ready) return;
    if (Date.now() > deadline)
      throw new UserError(
        `context ${cluster.context}: not ready after ${Math.round(timeoutMs / 1000)} s (${state.line}); check kubectl -n ${namespace} get pods`,
        3,
      );
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

export async function deploymentExists(cluster: Cluster, namespace: string): Promise<boolean> {
  return (
    (await kubeCall(cluster, 'read the apiserver Deployment', () =>
      readObject(cluster, { apiVersion: 'apps/v1', kind: 'Deployment', namespace, name: APISERVER_SERVICE }),
    )) !== undefined
  );
}
