/**
 * clustermesh-apiserver benchmark (issue 3 "Measure"): the built daemon as a process against a real
 * etcd (TLS, client-cert auth) and the official kube-apiserver (test/harness/kube-apiserver.ts).
 * - initial sync of 10,000 global services × 10 endpoints, 5,000 pods and 20 nodes: from spawning
 *   the daemon to /readyz (every canary written), as records/s;
 * - the export inside that sync, as a watch on etcd sees it: first record → last canary;
 * - the export alone: the same records (read back from etcd) through one SyncStore, from the first
 *   upsert to its canary (what the store's batched transactions achieve without the informers);
 * - baseline in the same run: the same records put one after another with a plain etcd client, as
 *   records/s; the ratios say what the pipeline and the store cost or save;
 * - change-to-etcd latency: one EndpointSlice update at a time, until a watch on etcd sees the key.
 * Run: npx tsc -p tsconfig.json && node dist/bench/apiserver.js
 * Smaller runs: BENCH_APISERVER_SERVICES=1000 BENCH_APISERVER_PODS=500.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import type { Etcd3, Watcher } from 'etcd3';
import { ADMIN_USER } from '../lib/kvstore/users.js';
import { createEtcdClient } from '../lib/kvstore/etcd.js';
import { serviceKey } from '../lib/kvstore/keys.js';
import { SyncStore } from '../lib/kvstore/sync-store.js';
import { EtcdHarness, freePort } from '../test/harness/etcd.js';
import { startKubeApiServer, type KubeApiServer } from '../test/harness/kube-apiserver.js';
import { WRITE_CONCURRENCY, inParallel } from './kube.js';
import { type BenchResult, distribution, envInt, figure, runStandalone } from './report.js';

const SERVICES = envInt('BENCH_APISERVER_SERVICES', 10_000);
const ENDPOINTS_PER_SERVICE = 10;
const PODS = envInt('BENCH_APISERVER_PODS', 5_000);
const LABEL_SETS = 50;
const NODES = 20;
const NAMESPACES = 10;
const LATENCY_SAMPLES = 250;
const CLUSTER = 'bench';
const SYNC_TIMEOUT_MS = 300_000;
const CHANGE_TIMEOUT_MS = 10_000;
const MAIN = join(dirname(fileURLToPath(import.meta.url)), '../clustermesh-apiserver/main.js');

/** the ClusterIPs' range; kube-apiserver keeps its first address for the `kubernetes` Service */
const SERVICE_CIDR = '10.112.0.0/16';

const nsOf = (i: number) => `ns-${i % NAMESPACES}`;
const serviceIP = (i: number) => `10.112.${(i + 2) >> 8}.${(i + 2) & 255}`;
/** 10.128.0.0/10 holds the 100k endpoint addresses; `generation` moves one for the latency runs. */
const endpointIP = (i: number, j: number, generation = 0) => {
  const n = i * ENDPOINTS_PER_SERVICE + j + generation * SERVICES * ENDPOINTS_PER_SERVICE;
  return `10.${128 + ((n >> 16) & 63)}.${(n >> 8) & 255}.${n & 255}`;
};

function sliceOf(i: number, generation = 0): KubernetesObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `svc-${i}-1`,
      namespace: nsOf(i),
      labels: { 'kubernetes.io/service-name': `svc-${i}` },
    },
    addressType: 'IPv4',
    endpoints: Array.from({ length: ENDPOINTS_PER_SERVICE }, (_, j) => ({
      addresses: [endpointIP(i, j, j === 0 ? generation : 0)],
      conditions: { ready: true },
    })),
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  } as KubernetesObject;
}

async function seed(kube: KubeApiServer): Promise<void> {
  // objects.create also makes a missing namespace or ServiceAccount and writes the status (Nodes,
  // Pods); the rest goes in one request each once the namespaces exist
  const create = (obj: object) => kube.objects.create(obj as KubernetesObject);
  const api = KubernetesObjectApi.makeApiClient(kube.kubeConfig());
  const namespaces = Array.from({ length: NAMESPACES }, (_, n) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `ns-${n}` } }));
  await inParallel(namespaces, WRITE_CONCURRENCY, create);
  const nodes = Array.from({ length: NODES }, (_, n) => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: `node-${n}` },
    spec: { podCIDR: `10.102.${n}.0/24`, podCIDRs: [`10.102.${n}.0/24`] },
    status: { addresses: [{ type: 'InternalIP', address: `10.99.0.${10 + n}` }] },
  }));
  const services = Array.from({ length: SERVICES }, (_, i) => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: `svc-${i}`, namespace: nsOf(i), annotations: { 'clustermesh.io/global': 'true' } },
    spec: {
      clusterIP: serviceIP(i),
      clusterIPs: [serviceIP(i)],
      ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
      selector: { app: `svc-${i}` },
    },
  }));
  const slices = Array.from({ length: SERVICES }, (_, i) => sliceOf(i));
  const pods = Array.from({ length: PODS }, (_, p) => {
    const hostIP = `10.99.0.${10 + (p % NODES)}`;
    const podIP = `10.102.${p % NODES}.${Math.floor(p / NODES) + 1}`;
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `pod-${p}`, namespace: nsOf(p), labels: { app: `app-${p % LABEL_SETS}` } },
      spec: { containers: [{ name: 'main', image: 'bench' }] },
      status: { phase: 'Running', hostIP, hostIPs: [{ ip: hostIP }], podIP, podIPs: [{ ip: podIP }] },
    };
  });
  await inParallel([...services, ...slices], WRITE_CONCURRENCY, (obj) => api.create(obj as KubernetesObject));
  await inParallel([...nodes, ...pods], WRITE_CONCURRENCY, create);
}

async function writeDaemonFiles(dir: string, etcd: EtcdHarness, kube: KubeApiServer): Promise<string[]> {
  const admin = await etcd.clientCert(ADMIN_USER);
  await writeFile(join(dir, 'ca.crt'), etcd.ca.certPem);
  await writeFile(join(dir, 'tls.crt'), admin.certPem);
  await writeFile(join(dir, 'tls.key'), admin.keyPem, { mode: 0o600 });
  await writeFile(join(dir, 'kubeconfig'), kube.kubeconfig('bench'));
  return [
    `--cluster-name=${CLUSTER}`,
    '--cluster-id=3',
    `--kubeconfig=${join(dir, 'kubeconfig')}`,
    `--etcd-endpoints=${etcd.endpoint}`,
    `--etcd-ca=${join(dir, 'ca.crt')}`,
    `--etcd-cert=${join(dir, 'tls.crt')}`,
    `--etcd-key=${join(dir, 'tls.key')}`,
  ];
}

async function waitUntil(what: string, condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function isReady(url: string): Promise<boolean> {
  try {
    return (await fetch(url)).status === 200;
  } catch {
    return false;
  }
}

/** Everything published, read in parts: one read of all of it exceeds gRPC's 4 MiB message limit. */
async function readRecords(client: Etcd3): Promise<Record<string, string>> {
  const prefixes = [
    ...Array.from({ length: NAMESPACES }, (_, n) => `cilium/state/services/v1/${CLUSTER}/ns-${n}/`),
    `cilium/state/nodes/v1/${CLUSTER}/`,
    'cilium/state/identities/v1/',
    'cilium/state/ip/v1/',
  ];
  const parts = await Promise.all(prefixes.map((prefix) => client.getAll().prefix(prefix).strings()));
  return Object.assign({}, ...parts) as Record<string, string>;
}

/** CPU seconds a process has used (all its threads): utime + stime of /proc/<pid>/stat, in USER_HZ (100/s on Linux). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** When a watch on etcd sees the daemon's first record and its last canary (performance.now() times). */
interface ExportWindow {
  firstRecordMs?: number;
  lastCanaryMs?: number;
}

async function watchExport(client: Etcd3): Promise<{ window: ExportWindow; watcher: Watcher }> {
  const window: ExportWindow = {};
  const watcher = await client.watch().prefix('cilium/').create();
  watcher.on('put', (kv) => {
    const key = kv.key.toString();
    if (key.startsWith('cilium/state/')) window.firstRecordMs ??= performance.now();
    else if (key.startsWith('cilium/synced/')) window.lastCanaryMs = performance.now();
  });
  return { window, watcher };
}

/** The same records through one SyncStore under another prefix: first upsert → canary written. */
async function storeExport(client: Etcd3, records: Record<string, string>): Promise<number> {
  const prefix = 'bench-export/';
  const store = new SyncStore({ client, prefix, canaryKey: 'bench-export-synced' });
  try {
    await store.start();
    const start = performance.now();
    for (const [key, value] of Object.entries(records)) store.upsert(`${prefix}${key}`, value);
    store.markInitialSyncDone();
    await store.whenSynced();
    return (performance.now() - start) / 1000;
  } finally {
    await store.stop();
    await client.delete().prefix(prefix).exec();
    await client.delete().key('bench-export-synced').exec();
  }
}

/** The same records, put one at a time under another prefix: what a naive writer achieves. */
async function baselinePuts(client: Etcd3, records: Record<string, string>): Promise<number> {
  const start = performance.now();
  for (const [key, value] of Object.entries(records))
    await client.put(`bench-baseline/${key}`).value(value).exec();
  const seconds = (performance.now() - start) / 1000;
  await client.delete().prefix('bench-baseline/').exec();
  return seconds;
}

/** Updates one slice at a time and times until etcd's watch shows the service's new backend. */
async function changeLatencies(client: Etcd3, kube: KubeApiServer): Promise<number[]> {
  const api = KubernetesObjectApi.makeApiClient(kube.kubeConfig());
  const watcher = await client.watch().prefix(`cilium/state/services/v1/${CLUSTER}/`).create();
  const waiting = new Map<string, { needle: string; resolve: () => void }>();
  watcher.on('put', (kv) => {
    const pending = waiting.get(kv.key.toString());
    if (pending && kv.value.toString().includes(pending.needle)) pending.resolve();
  });
  const latencies: number[] = [];
  try {
    for (let s = 0; s < LATENCY_SAMPLES; s++) {
      const i = Math.floor((s * SERVICES) / LATENCY_SAMPLES);
      const key = serviceKey(CLUSTER, nsOf(i), `svc-${i}`);
      const needle = `"${endpointIP(i, 0, 1 + s)}"`;
      let timer: NodeJS.Timeout | undefined;
      const seen = new Promise<void>((resolve, reject) => {
        waiting.set(key, { needle, resolve });
        timer = setTimeout(
          () => reject(new Error(`no etcd update of ${key} within ${CHANGE_TIMEOUT_MS} ms`)),
          CHANGE_TIMEOUT_MS,
        );
      });
      const start = performance.now();
      // one request: an EndpointSlice may be replaced without naming the version it replaces
      await api.replace(sliceOf(i, 1 + s));
      await seen.finally(() => clearTimeout(timer));
      latencies.push(performance.now() - start);
      waiting.delete(key);
    }
  } finally {
    await watcher.cancel();
  }
  return latencies;
}

/** Runs the clustermesh-apiserver benchmark: initial sync vs sequential puts, then change latency. */
export async function runApiserverBench(): Promise<BenchResult> {
  const etcd = await EtcdHarness.start();
  // (the stand-in was given a history of 100,000 events here; kube-apiserver sizes its watch cache itself)
  const kube = await startKubeApiServer({ serviceCIDRs: [SERVICE_CIDR] });
  const dir = await mkdtemp(join(tmpdir(), 'clustermesh-bench-apiserver-'));
  const client = createEtcdClient(await etcd.clientConfig(ADMIN_USER));
  let daemon: ChildProcess | undefined;
  try {
    const seedStart = performance.now();
    await seed(kube);
    const seedMs = performance.now() - seedStart;
    const flags = await writeDaemonFiles(dir, etcd, kube);
    const port = await freePort();
    const { window, watcher } = await watchExport(client);

    const syncStart = performance.now();
    daemon = spawn(process.execPath, [MAIN, ...flags, `--health-addr=127.0.0.1:${port}`], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, LOG_LEVEL: 'warn' },
    });
    await waitUntil(
      'the daemon to be ready',
      () => isReady(`http://127.0.0.1:${port}/readyz`),
      SYNC_TIMEOUT_MS,
    );
    const syncSeconds = (performance.now() - syncStart) / 1000;
    const daemonCpuSeconds = await cpuSeconds(daemon.pid!);
    await watcher.cancel();
    if (window.firstRecordMs === undefined || window.lastCanaryMs === undefined)
      throw new Error('the watch on etcd saw no record or no canary of the initial sync');
    const exportSeconds = (window.lastCanaryMs - window.firstRecordMs) / 1000;

    const records = await readRecords(client);
    const recordCount = Object.keys(records).length;
    const baselineSeconds = await baselinePuts(client, records);
    const storeSeconds = await storeExport(client, records);
    const latency = distribution(await changeLatencies(client, kube));

    const daemonRate = recordCount / syncSeconds;
    const exportRate = recordCount / exportSeconds;
    const storeRate = recordCount / storeSeconds;
    const baselineRate = recordCount / baselineSeconds;
    const rate = (seconds: number, perSecond: number) => `${seconds.toFixed(2)} s, ${perSecond.toFixed(0)} records/s`;
    const ms = (n: number) => `${n.toFixed(1)} ms`;
    return {
      name: 'apiserver',
      tables: [
        {
          title: 'clustermesh-apiserver: initial sync and EndpointSlice change → etcd',
          notes: [
            `cluster: ${SERVICES} global services × ${ENDPOINTS_PER_SERVICE} endpoints, ${PODS} pods (${LABEL_SETS} label sets), ${NODES} nodes; seeded in ${seedMs.toFixed(0)} ms;`,
            'the built daemon as a process, real etcd with TLS and client-cert auth, the official kube-apiserver',
          ],
          columns: ['measure', 'value'],
          rows: [
            ['records published (services + nodes + identities + ipcache)', recordCount],
            ['initial sync, spawn → /readyz (all canaries)', rate(syncSeconds, daemonRate)],
            ['  the daemon\'s CPU time meanwhile (all threads)', `${daemonCpuSeconds.toFixed(2)} s`],
            ['  of which the export: first record → last canary, seen by a watch', rate(exportSeconds, exportRate)],
            ['export alone: the same records through one SyncStore, first upsert → canary', rate(storeSeconds, storeRate)],
            ['baseline: sequential etcd puts of the same records', rate(baselineSeconds, baselineRate)],
            ['daemon sync / baseline throughput', `${(daemonRate / baselineRate).toFixed(2)}×`],
            ['daemon export / baseline throughput', `${(exportRate / baselineRate).toFixed(2)}×`],
            ['SyncStore export / baseline throughput', `${(storeRate / baselineRate).toFixed(2)}×`],
            [
              `EndpointSlice change → etcd (${latency.n} sequential updates)`,
              `p50 ${ms(latency.p50)}, p99 ${ms(latency.p99)}, max ${ms(latency.max)}`,
            ],
          ],
        },
      ],
      figures: [
        figure('apiserver.sync', `initial sync of ${recordCount} records (spawn → ready)`, daemonRate, 'records/s', {
          what: 'the same records put one after another with a plain etcd client',
          value: baselineRate,
        }),
        figure('apiserver.export', `export of ${recordCount} records inside the initial sync (first record → last canary)`, exportRate, 'records/s', {
          what: 'the same records put one after another with a plain etcd client',
          value: baselineRate,
        }),
        figure('apiserver.store-export', `export of ${recordCount} records through one SyncStore (first upsert → canary)`, storeRate, 'records/s', {
          what: 'the same records put one after another with a plain etcd client',
          value: baselineRate,
        }),
        figure('apiserver.change.p50', 'EndpointSlice change → etcd, p50', latency.p50, 'ms'),
        figure('apiserver.change.p99', 'EndpointSlice change → etcd, p99', latency.p99, 'ms'),
      ],
    };
  } finally {
    if (daemon && daemon.exitCode === null) {
      const exited = new Promise((resolve) => daemon!.once('exit', resolve));
      daemon.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
      if (daemon.exitCode === null) daemon.kill('SIGKILL');
    }
    client.close();
    await kube.close();
    await etcd.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

runStandalone(import.meta.url, runApiserverBench);
