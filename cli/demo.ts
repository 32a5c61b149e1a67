/**
 * `clustermesh lab demo`: echo behind a global Service with affinity local in east and west, a
 * client in east, live lines; east's backends go away (traffic moves to west) and come back
 * (traffic returns); then a summary and teardown, also on Ctrl-C or failure.
 */
import type { RequestRecord } from '../lab/workloads/client.js';
import { type RunningLab, labDown } from '../lab/cluster/index.js';
import { type Backend, type EchoSpec, createService, deployEcho, removeBackends, runClient } from '../lab/workloads/deployment.js';
import { type DemoSummary, secondLine, summarise, switchTime } from '../lab/workloads/timeline.js';
import { nthAddress, parseCidr } from '../lib/net/cidr.js';
import { errorMessage } from '../lib/errors.js';
import { openCluster } from './kube.js';
import { distDir, upAndWait } from './lab-up.js';
import { annotateService, annotationPatch } from './service.js';

const ECHO: EchoSpec = { namespace: 'clustermesh-demo', name: 'echo', replicas: 2, targetPort: 8080 };
const RATE = 20;
const SERVICE_PORT = 80;
const STEADY_MS = 4000;
const SWITCH_TIMEOUT_MS = 15_000;

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

function formatSummary(s: DemoSummary): string {
  const ms = (v: number | undefined) => (v === undefined ? 'never' : `${(v / 1000).toFixed(2)} s`);
  return [
    'summary:',
    `  requests: ${s.total} (${Object.entries(s.answeredBy).map(([c, n]) => `${c} ${n}`).join(', ')}), failed: ${s.failed}${errorBreakdown(s.errors)}`,
    `  failover east -> west: ${ms(s.failoverMs)} after east's backends were removed (${s.failedAfterRemoval} failed requests meanwhile)`,
    `  failback west -> east: ${ms(s.failbackMs)} after their return began (${s.failedAfterRestore} failed requests after)`,
  ].join('\n');
}

function errorBreakdown(errors: Record<string, number>): string {
  const parts = Object.entries(errors).map(([error, n]) => `${error} ×${n}`);
  return parts.length ? ` (${parts.join(', ')})` : '';
}

async function deployServices(running: RunningLab): Promise<Record<string, string>> {
  const vips: Record<string, string> = {};
  for (const cluster of running.plan.clusters) {
    const clusterIP = nthAddress(parseCidr(cluster.serviceCIDRv4), 10);
    vips[cluster.name] = clusterIP;
    await createService(running, cluster.name, { namespace: ECHO.namespace, name: ECHO.name, clusterIP, port: SERVICE_PORT, targetPort: ECHO.targetPort });
    await annotateService(openCluster(running.kubeconfig, cluster.name), ECHO, annotationPatch('global', { affinity: 'local' }));
  }
  return vips;
}

export async function runDemo(prefix: string): Promise<number> {
  const started = Date.now();
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    process.stderr.write('\ninterrupted: tearing down\n');
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const { running, ready } = await upAndWait(prefix, { waitMs: 30_000 });
    if (!ready) throw new Error('the agents did not all connect (see the status above)');
    const vips = await deployServices(running);
    const backends: Record<string, Backend[]> = {};
    for (const c of running.plan.clusters) backends[c.name] = await deployEcho(running, c.name, ECHO);
    const [local, remote] = running.plan.clusters.map((c) => c.name);
    console.log(`echo: ${ECHO.replicas} pods in each cluster behind global Service ${ECHO.namespace}/${ECHO.name} (affinity local); client in ${local} -> ${vips[local]}:${SERVICE_PORT}, ${RATE} requests/s`);
    const records: RequestRecord[] = [];
    const client = await runClient(running, `${local}-worker`, { target: `${vips[local]}:${SERVICE_PORT}`, rate: RATE, durationSeconds: 40, distDir: distDir() }, (r) => records.push(r));
    let shown = 0;
    const ticker = setInterval(() => {
      const now = records.length ? Math.floor(records[records.length - 1].t / 1000) : 0;
      for (; shown < now; shown++) {
        const line = secondLine(records, shown);
        const who = Object.entries(line.byCluster).map(([c, n]) => `${c} ${n}`).join(', ') || '-';
        console.log(`  t=${String(shown).padStart(2)}s  answered by: ${who.padEnd(18)} failed: ${line.failed}`);
      }
    }, 250);
    const stopClient = () => client.child.kill('SIGTERM');
    try {
      const answered = (cluster: string, since: number) => () => interrupted || switchTime(records, since, cluster) !== undefined;
      if (!(await waitUntil(answered(local, 0), SWITCH_TIMEOUT_MS))) throw new Error(`the client never got an answer from ${local}`);
      await waitUntil(() => interrupted, STEADY_MS);
      const removedAt = records.length ? records[records.length - 1].t : 0;
      console.log(`>>> removing ${local}'s echo backends (graceful: EndpointSlice first)`);
      await removeBackends(running, ECHO, backends[local], true);
      await waitUntil(answered(remote, removedAt), SWITCH_TIMEOUT_MS);
      await waitUntil(() => interrupted, STEADY_MS);
      const restoredAt = records.length ? records[records.length - 1].t : 0;
      console.log(`>>> bringing ${local}'s echo backends back`);
      backends[local] = await deployEcho(running, local, ECHO);
      await waitUntil(answered(local, restoredAt), SWITCH_TIMEOUT_MS);
      await waitUntil(() => interrupted, 2000);
      stopClient();
      await client.done;
      clearInterval(ticker);
      if (interrupted) return 130;
      console.log(formatSummary(summarise(records, local, remote, removedAt, restoredAt)));
      return 0;
    } finally {
      clearInterval(ticker);
      stopClient();
    }
  } catch (err) {
    process.stderr.write(`clustermesh: demo failed: ${errorMessage(err).split('\n')[0]}\n`);
    return 1;
  } finally {
    process.stderr.write(`tearing down lab ${prefix}\n`);
    await labDown(prefix).catch((err) => process.stderr.write(`clustermesh: teardown: ${errorMessage(err)}\n`));
    process.stderr.write(`done in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

