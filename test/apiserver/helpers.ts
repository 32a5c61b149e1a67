/**
 * A real etcd (TLS, client-cert auth) + the official kube-apiserver, and the daemon's modules
 * running in-process against them, with its logs captured.
 */
import { KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Etcd3 } from 'etcd3';
import { pino, type Logger } from 'pino';
import { ApiserverDaemon, type DaemonOptions } from '../../clustermesh-apiserver/daemon.js';
import { ADMIN_USER } from '../../lib/kvstore/users.js';
import { startKubeApiServer, type KubeApiServer } from '../harness/kube-apiserver.js';
import { createEtcdClient } from '../../lib/kvstore/etcd.js';
import { EtcdHarness } from '../harness/etcd.js';
import { waitFor } from '../kvstore/helpers.js';

export { waitFor };

export const CLUSTER = { name: 'west', id: 2 };
export const NAMESPACE = 'clustermesh-system';

export interface TestEnv {
  etcd: EtcdHarness;
  kube: KubeApiServer;
  kubeConfig: KubeConfig;
  /** etcd client as the admin user (the one the daemon uses) */
  admin: Etcd3;
  clients: Etcd3[];
  daemons: ApiserverDaemon[];
  logs: string[];
}

export async function startEnv(): Promise<TestEnv> {
  const etcd = await EtcdHarness.start();
  let kube: KubeApiServer | undefined;
  try {
    // the fixtures' ClusterIPs are west's (lab/topology/plan.ts)
    kube = await startKubeApiServer({ serviceCIDRs: ['10.112.0.0/16', 'fd99:112::/108'], serviceExports: true });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromString(kube.kubeconfig('test'));
    const admin = createEtcdClient(await etcd.clientConfig(ADMIN_USER));
    return { etcd, kube, kubeConfig, admin, clients: [admin], daemons: [], logs: [] };
  } catch (err) {
    await kube?.close();
    await etcd.stop();
    throw err;
  }
}

export async function stopEnv(env: TestEnv | undefined): Promise<void> {
  if (!env) return;
  try {
    await Promise.all(env.daemons.map((d) => d.stop()));
    env.clients.forEach((c) => c.close());
    await env.kube.close();
  } finally {
    await env.etcd.stop();
  }
}

/** Log lines land in `env.logs` (JSON), so tests can check what was reported. */
function capturingLogger(lines: string[]): Logger {
  return pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
}

/** Starts the daemon in-process and waits until it has begun syncing (not until ready). */
export async function startDaemon(
  env: TestEnv,
  overrides: Partial<DaemonOptions> = {},
): Promise<ApiserverDaemon> {
  const daemon = new ApiserverDaemon({
    cluster: CLUSTER,
    etcd: await env.etcd.clientConfig(ADMIN_USER),
    kubeConfig: env.kubeConfig,
    healthAddr: { host: '127.0.0.1', port: 0 },
    globalNamespacesDefault: true,
    namespace: NAMESPACE,
    logger: capturingLogger(env.logs),
    // the heartbeat must not move revisions while a test compares them
    heartbeatIntervalMs: 3_600_000,
    etcdBackoff: { minTimeoutMs: 20, maxTimeoutMs: 500 },
    ...overrides,
  });
  env.daemons.push(daemon);
  await daemon.start();
  return daemon;
}

export async function stopDaemon(env: TestEnv, daemon: ApiserverDaemon): Promise<void> {
  await daemon.stop();
  env.daemons.splice(env.daemons.indexOf(daemon), 1);
}

/** Every key under `prefix` with its value and mod_revision. */
export async function snapshot(
  client: Etcd3,
  prefix = 'cilium/',
): Promise<Map<string, { value: string; rev: number }>> {
  const response = await client.getAll().prefix(prefix).exec();
  return new Map(
    response.kvs.map((kv) => [
      kv.key.toString(),
      { value: kv.value.toString(), rev: Number(kv.mod_revision) },
    ]),
  );
}

export async function valuesUnder(client: Etcd3, prefix: string): Promise<Record<string, string>> {
  return client.getAll().prefix(prefix).strings();
}

/** Adds apiVersion/kind so the API server accepts the objects the conversion fixtures build. */
export function withKind<T extends KubernetesObject>(
  apiVersion: string,
  kind: string,
  obj: T,
): T & { apiVersion: string; kind: string } {
  return { ...obj, apiVersion, kind };
}

/** The value of one series of a Prometheus text exposition, selected by one label. */
export async function metricValue(
  healthUrl: string,
  name: string,
  label: string,
  value: string,
): Promise<number> {
  const text = await (await fetch(`${healthUrl}/metrics`)).text();
  const series = text
    .split('\n')
    .find((line) => line.startsWith(`${name}{`) && line.includes(`${label}="${value}"`));
  return series ? Number(series.slice(series.lastIndexOf(' ') + 1)) : 0;
}
