/**
 * A real Kubernetes API for tests: the official etcd + kube-apiserver (and, when asked,
 * kube-controller-manager + kube-scheduler) built by scripts/build-upstream.sh, on free loopback
 * ports, with the command lines the lab uses (lab/control-plane/). `close()` always cleans up.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig, type KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import { parse, stringify } from 'yaml';
import { startControlPlane } from '../../lab/control-plane/index.js';
import { upstreamBinDir } from '../../lab/control-plane/binaries.js';
import { freePort, retryPortRace } from './etcd.js';
import type { Requirement } from './requirements.js';

export interface KubeApiServer {
  url: string;
  /** A kubeconfig (YAML) for a cluster admin whose current context is `contextName`. */
  kubeconfig(contextName?: string): string;
  /** client-node's KubeConfig for the admin */
  kubeConfig(): KubeConfig;
  /** typed-free object access as the admin, for test fixtures */
  objects: TestObjects;
  /** a kubeconfig (YAML) for the kubelet of `node` */
  kubeletKubeconfig(node: string): Promise<string>;
  /**
   * Kills kube-apiserver (SIGKILL: every open watch and request breaks, as in a crash) and starts it
   * again with the same command line, port and etcd; resolves when it is ready again.
   */
  restartApiServer(): Promise<void>;
  /** Stops every program and removes its files. */
  close(): Promise<void>;
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
}

/**
 * Fixture writes the way a test means them: `create` also creates a missing namespace and writes
 * the `status` it was given through the status subresource (the API server drops a Pod's or
 * Node's status on create; kubelets write it afterwards).
 */
export interface TestObjects {
  create<T extends KubernetesObject>(object: T): Promise<T>;
  /** replaces spec/metadata (and status, when given) of an existing object */
  update<T extends KubernetesObject>(object: T): Promise<T>;
  get(ref: ObjectRef, namespace: string | undefined, name: string): Promise<KubernetesObject & Record<string, unknown>>;
  exists(ref: ObjectRef, namespace: string | undefined, name: string): Promise<boolean>;
  delete(ref: ObjectRef, namespace: string | undefined, name: string): Promise<void>;
  /**
   * Every object of these kinds, in all namespaces, as `Kind namespace/name@resourceVersion`,
   * sorted: equal before and after a command that wrote none of them. (The cluster-wide
   * resourceVersion cannot say that: kube-apiserver renews its own Lease every 10 s.)
   */
  versions(refs: readonly ObjectRef[]): Promise<string[]>;
}

const STATUS_KINDS = new Set(['Pod', 'Node', 'Service']);

export function testObjects(kc: KubeConfig): TestObjects {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const head = (ref: ObjectRef, namespace: string | undefined, name: string) =>
    ({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name, ...(namespace ? { namespace } : {}) } }) as KubernetesObject & {
      metadata: { name: string };
    };
  const writeStatus = async <T extends KubernetesObject>(object: T, written: KubernetesObject): Promise<T> => {
    const status = (object as { status?: unknown }).status;
    if (!status || !STATUS_KINDS.has(object.kind ?? '')) return written as T;
    const path = `${apiPath(object)}/status`;
    const body = { ...written, status };
    return (await requestJson(kc, 'PUT', path, body)) as T;
  };
  const createIfMissing = async (object: KubernetesObject) => {
    try {
      await api.create(object);
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
    }
  };
  // What kube-controller-manager's service-account controller would have made (the ServiceAccount
  // admission plugin refuses a Pod whose ServiceAccount does not exist).
  const ensureNamespaceOf = async (object: KubernetesObject) => {
    const namespace = object.metadata?.namespace;
    if (!namespace || object.kind === 'Namespace') return;
    await createIfMissing({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
    if (object.kind !== 'Pod') return;
    const serviceAccount = (object as { spec?: { serviceAccountName?: string } }).spec?.serviceAccountName ?? 'default';
    await createIfMissing({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: serviceAccount, namespace } } as KubernetesObject);
  };
  return {
    async create(object) {
      await ensureNamespaceOf(object);
      return writeStatus(object, await api.create(object));
    },
    async update(object) {
      const current = await api.read(head(object as ObjectRef, object.metadata?.namespace, object.metadata!.name!));
      const written = await api.replace({ ...object, metadata: { ...object.metadata, resourceVersion: current.metadata?.resourceVersion } });
      return writeStatus(object, written);
    },
    async get(ref, namespace, name) {
      return (await api.read(head(ref, namespace, name))) as KubernetesObject & Record<string, unknown>;
    },
    async exists(ref, namespace, name) {
      try {
        await api.read(head(ref, namespace, name));
        return true;
      } catch (err) {
        if ((err as { code?: number }).code === 404) return false;
        throw err;
      }
    },
    async delete(ref, namespace, name) {
      try {
        await api.delete(head(ref, namespace, name), undefined, undefined, 0);
      } catch (err) {
        if ((err as { code?: number }).code !== 404) throw err;
      }
    },
    async versions(refs) {
      const lists = await Promise.all(refs.map((ref) => api.list(ref.apiVersion, ref.kind)));
      return lists
        .flatMap((list, i) => list.items.map((o) => `${refs[i]!.kind} ${o.metadata?.namespace ?? ''}/${o.metadata?.name}@${o.metadata?.resourceVersion}`))
        .sort();
    },
  };
}

function apiPath(object: KubernetesObject): string {
  const group = object.apiVersion!.includes('/') ? `/apis/${object.apiVersion}` : `/api/${object.apiVersion}`;
  const plural = `${object.kind!.toLowerCase()}s`;
  const ns = object.metadata?.namespace ? `/namespaces/${object.metadata.namespace}` : '';
  return `${group}${ns}/${plural}/${object.metadata!.name}`;
}

async function requestStatus(kc: KubeConfig, path: string): Promise<number> {
  const opts: import('node:https').RequestOptions = { method: 'GET', timeout: 2000 };
  await kc.applyToHTTPSOptions(opts);
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = request(`${kc.getCurrentCluster()!.server}${path}`, opts, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

async function requestJson(kc: KubeConfig, method: string, path: string, body?: unknown): Promise<unknown> {
  const cluster = kc.getCurrentCluster()!;
  const opts: import('node:https').RequestOptions = { method, headers: { 'content-type': 'application/json' } };
  await kc.applyToHTTPSOptions(opts);
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = request(`${cluster.server}${path}`, opts, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () =>
        (res.statusCode ?? 500) < 300 ? resolve(JSON.parse(text)) : reject(Object.assign(new Error(`${method} ${path}: ${res.statusCode} ${text}`), { code: res.statusCode })),
      );
    });
    req.on('error', reject);
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

/**
 * The Kubernetes MCS API's ServiceExport (group multicluster.x-k8s.io, v1alpha1), which clusters
 * install as a CRD; here with a schema that keeps whatever status an implementation writes.
 */
export const SERVICE_EXPORT_CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'serviceexports.multicluster.x-k8s.io' },
  spec: {
    group: 'multicluster.x-k8s.io',
    scope: 'Namespaced',
    names: { kind: 'ServiceExport', listKind: 'ServiceExportList', plural: 'serviceexports', singular: 'serviceexport' },
    versions: [
      {
        name: 'v1alpha1',
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: { status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
          },
        },
      },
    ],
  },
};

export interface KubeApiServerOptions {
  /** also run kube-controller-manager and kube-scheduler (EndpointSlices, Deployments, …) */
  controllers?: boolean;
  /** install the ServiceExport CRD and wait until it is served */
  serviceExports?: boolean;
  serviceCIDRs?: string[];
}

const running = new Set<ChildProcess>();
process.once('exit', () => running.forEach((c) => c.kill('SIGKILL')));

export function kubeBinariesRequirement(): Requirement {
  const dir = upstreamBinDir();
  return { met: existsSync(join(dir, 'kube-apiserver')), unmet: `official kube-apiserver not built (${dir}): run npm run setup` };
}

export function startKubeApiServer(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  return retryPortRace(() => startOnce(options));
}

async function startOnce(options: KubeApiServerOptions): Promise<KubeApiServer> {
  const dir = mkdtempSync(join(tmpdir(), 'clustermesh-kube-'));
  const children: ChildProcess[] = [];
  /** how each program was started, by the name lab/control-plane/index.ts gives it */
  const commands = new Map<string, { command: string; args: string[]; child: ChildProcess }>();
  const terminate = (c: ChildProcess, signal: NodeJS.Signals) =>
    new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) return resolve();
      c.once('exit', () => resolve());
      c.kill(signal);
      setTimeout(() => c.kill('SIGKILL'), 3000).unref();
    });
  const stop = async () => {
    await Promise.all(children.map((c) => terminate(c, 'SIGTERM')));
    children.forEach((c) => running.delete(c));
    rmSync(dir, { recursive: true, force: true });
  };
  const spawnProgram = (name: string, command: string, args: string[]) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const keep = (chunk: Buffer) => {
      tail.push(...chunk.toString().split('\n').filter(Boolean));
      tail.splice(0, Math.max(0, tail.length - 20));
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    children.push(child);
    running.add(child);
    commands.set(name, { command, args, child });
    return { alive: () => child.exitCode === null && child.signalCode === null, logTail: () => `${name}: ${tail.slice(-5).join(' / ')}` };
  };
  try {
    const [apiPort, etcdClientPort, etcdPeerPort] = [await freePort(), await freePort(), await freePort()];
    const cp = await startControlPlane(
      {
        clusterName: CLUSTER_NAME,
        dir,
        advertiseAddress: '127.0.0.1',
        bindAddress: '127.0.0.1',
        apiPort,
        etcdClientPort,
        etcdPeerPort,
        serviceCIDRs: options.serviceCIDRs ?? ['10.96.0.0/16'],
        controllers: options.controllers ?? false,
      },
      spawnProgram,
    );
    const adminYaml = readFileSync(cp.adminKubeconfig, 'utf8');
    const kubeconfig = (contextName = 'lab') => renameContext(adminYaml, contextName);
    const kc = new KubeConfig();
    kc.loadFromString(adminYaml);
    if (options.serviceExports) await installServiceExports(kc);
    const restartApiServer = async () => {
      const name = `${CLUSTER_NAME}-kube-apiserver`;
      const { command, args, child } = commands.get(name)!;
      await terminate(child, 'SIGKILL');
      children.splice(children.indexOf(child), 1);
      running.delete(child);
      const program = spawnProgram(name, command, args);
      await waitReady(kc, program);
    };
    return {
      objects: testObjects(kc),
      url: cp.url,
      kubeconfig,
      kubeConfig: () => {
        const kc = new KubeConfig();
        kc.loadFromString(adminYaml);
        return kc;
      },
      kubeletKubeconfig: async (node) => readFileSync(await cp.kubeletKubeconfig(node), 'utf8'),
      restartApiServer,
      close: stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

const CLUSTER_NAME = 'test';
const READY_TIMEOUT_MS = 90_000;

/** Polls /readyz as the admin until kube-apiserver answers 200, failing early if it exits. */
async function waitReady(kc: KubeConfig, program: { alive(): boolean; logTail(): string }): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const status = await requestStatus(kc, '/readyz').catch(() => 0);
    if (status === 200) return;
    if (!program.alive()) throw new Error(`kube-apiserver exited while restarting: ${program.logTail()}`);
    if (Date.now() > deadline) throw new Error(`kube-apiserver not ready ${READY_TIMEOUT_MS / 1000} s after a restart: ${program.logTail()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function installServiceExports(kc: KubeConfig): Promise<void> {
  await KubernetesObjectApi.makeApiClient(kc).create(SERVICE_EXPORT_CRD);
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await requestJson(kc, 'GET', '/apis/multicluster.x-k8s.io/v1alpha1/serviceexports?limit=1');
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`the ServiceExport CRD was not served within 30 s: ${(err as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** The same kubeconfig with its one cluster, user and context named `name`. Pure. */
export function renameContext(yaml: string, name: string): string {
  const doc = parse(yaml) as {
    clusters: Array<{ name: string }>;
    users: Array<{ name: string }>;
    contexts: Array<{ name: string; context: { cluster: string; user: string } }>;
    'current-context': string;
  };
  doc.clusters[0]!.name = name;
  doc.users[0]!.name = name;
  doc.contexts[0] = { name, context: { cluster: name, user: name } };
  doc['current-context'] = name;
  return stringify(doc);
}
