/**
 * `clustermesh install`: helm's check of the chart values, then the PKI and identity of one cluster
 * (Secrets + the clustermesh-config ConfigMap), then `helm upgrade --install` of the chart by the
 * real helm (a release users can `helm upgrade` and `helm uninstall`), then a wait with visible
 * progress. The lab installs with exactly this code (installCluster), adding a values file of its own.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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
  ensureNamespace,
  kubeCall,
  nodeInternalIPs,
  readConfigMapData,
  readObject,
  readSecretData,
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

/**
 * Creates or updates the certificate Secrets the chart mounts (the chart itself carries the
 * clustermesh-config ConfigMap with the cluster's identity). Idempotent: an existing CA is reused,
 * so certificates issued to peers stay valid. Refuses to rename or renumber an installed cluster.
 */
async function bootstrapCluster(cluster: Cluster, { namespace, identity }: ChartValues, { ca: given, progress }: InstallOptions): Promise<void> {
  await assertSameIdentity(cluster, namespace, identity);
  const ca = await chooseCa(cluster, namespace, identity, given);
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
  ];
  for (const object of objects) {
    await upsertObject(cluster, object);
    progress(`wrote ${object.kind} ${namespace}/${object.metadata?.name}`);
  }
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

export const RELEASE_NAME = 'clustermesh';

export interface ChartValues {
  namespace: string;
  identity: ClusterIdentity;
  nodePort: number;
  /** more values files (helm -f), later ones win */
  valuesFiles?: string[];
  /** key=value overrides (helm --set), after the files */
  sets?: string[];
}

/** The helm arguments that name the chart and its values (shared by --render-only and install). Pure. */
export function chartArgs(root: string, values: ChartValues): string[] {
  return [
    RELEASE_NAME,
    join(root, 'deploy', 'helm', 'clustermesh'),
    '--namespace',
    values.namespace,
    ...(values.valuesFiles ?? []).flatMap((file) => ['--values', file]),
    '--set',
    `cluster.name=${values.identity.name}`,
    '--set',
    `cluster.id=${values.identity.id}`,
    '--set',
    `apiserver.service.nodePort=${values.nodePort}`,
    ...(values.sets ?? []).flatMap((set) => ['--set', set]),
  ];
}

/**
 * helm's error as one line: from its `Error:` line on (a schema failure lists one problem a line
 * under it), the problems joined with "; ". Pure.
 */
export function helmErrorLine(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const start = lines.findIndex((l) => l.startsWith('Error: '));
  let text = '';
  let afterItem = false;
  for (const line of start < 0 ? lines.slice(-1) : lines.slice(start)) {
    const item = line.startsWith('- ');
    text += `${text === '' ? '' : item && afterItem ? '; ' : ' '}${item ? line.slice(2) : line}`;
    afterItem = item;
  }
  return text.replace(/^Error: /, '');
}

async function helm(args: string[], what: string): Promise<string> {
  const binary = helmBinary(packageRoot());
  try {
    const { stdout } = await promisify(execFile)(binary, args, { maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') throw new UserError(`cannot run helm (${binary}): run npm run setup for .tools/helm, or put helm on PATH`);
    throw new UserError(`${what} failed: ${helmErrorLine((err as { stderr?: string }).stderr ?? '') || errorMessage(err)}`);
  }
}

/** `helm template` of the chart: helm's own checks of the values (values.schema.json, the templates), no cluster. */
function templateChart(values: ChartValues, extraArgs: string[], what: string): Promise<string> {
  return helm(['template', ...chartArgs(packageRoot(), values), ...extraArgs], what);
}

export async function renderChart(values: ChartValues): Promise<KubernetesObject[]> {
  const stdout = await templateChart(values, ['--set', 'createNamespace=true'], 'helm template');
  return parseAllDocuments(stdout)
    .map((doc) => doc.toJS() as KubernetesObject | null)
    .filter((obj): obj is KubernetesObject => obj !== null && typeof obj === 'object' && !!obj.kind);
}

export interface InstallOptions {
  /** a CA to use (--ca-from); default: the cluster's existing one, else a new one */
  ca?: CertifiedKey;
  progress: (line: string) => void;
  /** wait until ready, at most this long; undefined: do not wait */
  waitMs?: number;
}

/**
 * Installs clustermesh in one cluster. helm checks the values first, with exactly the arguments of
 * the install and no cluster access, so values the chart refuses change nothing: bootstrapCluster
 * writes the namespace and Secrets, which `helm upgrade --install` refusing would leave behind.
 */
export async function installCluster(cluster: Cluster, values: ChartValues, opts: InstallOptions): Promise<void> {
  await templateChart(values, [], `helm template (checking the values before writing to context ${cluster.context})`);
  await bootstrapCluster(cluster, values, opts);
  await helmInstall(cluster, values, opts.progress);
  if (opts.waitMs !== undefined) await waitInstalled(cluster, values.namespace, opts.waitMs, opts.progress);
}

/**
 * `helm upgrade --install` of the chart into the cluster, through a private copy of the
 * kubeconfig the CLI loaded (also when that came from the in-cluster service account).
 */
async function helmInstall(cluster: Cluster, values: ChartValues, progress: (line: string) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'clustermesh-helm-'));
  try {
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, cluster.kc.exportConfig(), { mode: 0o600 });
    const args = ['upgrade', '--install', ...chartArgs(packageRoot(), values), '--kubeconfig', kubeconfig, '--kube-context', cluster.kc.getCurrentContext()];
    await helm(args, `helm upgrade --install in context ${cluster.context}`);
    progress(`helm release ${RELEASE_NAME} installed in ${values.namespace}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
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

async function waitInstalled(
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
