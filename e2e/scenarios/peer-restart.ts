/**
 * Scenarios 10 and 11: west's control plane starts over from nothing, and west compacts its etcd
 * history, each while east sends to west's backends (east's own removed first).
 *
 * 10: west's etcd and clustermesh-apiserver are SIGKILLed, etcd's data dir is removed (the chart
 * runs etcd in an emptyDir: a restarted pod starts empty) and both start again; the apiserver
 * recreates its users and config and repopulates. East's agents keep west's records until west's
 * sync canaries are back (lib/kvstore/watch-store.ts): no request fails, no record and no map
 * entry is deleted.
 * 11: west's etcd compacts its whole history several times (what a peer's read-only user may do on
 * etcd 3.4.23, see README "Trust"): nothing fails and nothing leaves the maps.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { LAB_PORTS } from '../../lab/cluster/paths.js';
import { removeBackends } from '../../lab/workloads/deployment.js';
import { createEtcdClient, loadEtcdClientConfig } from '../../lib/kvstore/etcd.js';
import { agentMetricsText, agentStatus, metricByLabel } from './agents.js';
import { answeredBy, requestCount } from './analysis.js';
import { apiserverDaemon, etcdDaemon, killDaemon, startDaemon, type StoppedDaemon } from './daemons.js';
import { FAILOVER_RATE, steadyTraffic } from './failover.js';
import { type ScenarioResult, resultOf, withRestore } from './result.js';
import { CONVERGE_TIMEOUT_MS, ECHO, type E2eEnv, LOCAL, REMOTE, echoBackends, restoreBaseline, workerNodes } from './suite.js';
import { type Traffic } from './traffic.js';
import { waitFor } from './wait.js';

const RATE = FAILOVER_RATE / 2;
/** etcd start, the apiserver's bootstrap and full resync, the agents' relist backoff (≤ 5 s) */
const RESYNC_TIMEOUT_MS = 60_000;
/** after west is whole again: long enough for every agent's canary relist (backoff ≤ 5 s) */
const SETTLE_SECONDS = 8;
const COMPACTIONS = 5;
const RECORD_EVENTS_METRIC = 'clustermesh_agent_remote_record_events_total';
const SAMPLE_MS = 200;

interface AgentCounts {
  /** map entries the agent deleted since it started */
  mapDeletes: number;
  /** records of peers it deleted since it started */
  recordDeletes: number;
}

async function agentCounts(env: E2eEnv, node: string): Promise<AgentCounts> {
  const [status, metrics] = await Promise.all([agentStatus(env.running, node), agentMetricsText(env.running, node)]);
  return {
    mapDeletes: status.datapath.deletes,
    recordDeletes: metricByLabel(metrics, RECORD_EVENTS_METRIC, 'op').delete ?? 0,
  };
}

/** What every east agent deleted between two readings, per node. Pure. */
function deltas(nodes: string[], before: AgentCounts[], after: AgentCounts[], field: keyof AgentCounts): Record<string, number> {
  return Object.fromEntries(nodes.map((n, i) => [n, after[i][field] - before[i][field]]));
}

/**
 * Samples every east agent's programmed backends until stopped: the fewest of west's any agent
 * had at any sample (an agent busy answering counts as no sample, not as zero).
 */
function sampleRemoteBackends(env: E2eEnv, nodes: string[]): { stop(): Promise<number> } {
  let fewest = Infinity;
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const node of nodes) {
        const all = await echoBackends(env, node).catch(() => null);
        if (all) fewest = Math.min(fewest, all[REMOTE] ?? 0);
      }
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return fewest;
    },
  };
}

/** East's backends removed, every east agent sending to west's two; traffic from the east client. */
async function sendToRemote(env: E2eEnv, rate: number, maxSeconds: number): Promise<Traffic> {
  await removeBackends(env.running, ECHO, env.backends[LOCAL], true);
  env.backends[LOCAL] = [];
  for (const node of workerNodes(env, LOCAL))
    await waitFor(`${node} to use only ${REMOTE}'s backends`, () => echoBackends(env, node, 'active'), (a) => !a[LOCAL] && a[REMOTE] === 2, CONVERGE_TIMEOUT_MS);
  return steadyTraffic(env, rate, { cluster: REMOTE, maxSeconds });
}

function dataDirOf(stopped: StoppedDaemon): string {
  const flag = stopped.argv.find((arg) => arg.startsWith('--data-dir='));
  if (!flag) throw new Error(`${stopped.daemon.name} runs without --data-dir=: cannot start it empty`);
  return flag.slice('--data-dir='.length);
}

function apiserverReady(env: E2eEnv): Promise<boolean> {
  const cp = env.running.plan.nodes.find((n) => n.cluster === REMOTE && n.role === 'control-plane')!;
  return fetch(`http://${cp.ipv4}:${LAB_PORTS.apiserverHealth}/readyz`, { signal: AbortSignal.timeout(1000) }).then(
    (res) => res.ok,
    () => false,
  );
}

/** An etcd client with west's admin certificate. */
function remoteAdminClient(env: E2eEnv) {
  const pki = env.running.paths.pki(REMOTE);
  const cp = env.running.plan.nodes.find((n) => n.cluster === REMOTE && n.role === 'control-plane')!;
  return createEtcdClient(
    loadEtcdClientConfig({ endpoints: [`https://${cp.ipv4}:${LAB_PORTS.etcd}`], caFile: join(pki, 'ca.crt'), certFile: join(pki, 'admin.crt'), keyFile: join(pki, 'admin.key') }),
  );
}

export async function peerRestartEmpty(env: E2eEnv, rate = RATE): Promise<ScenarioResult> {
  const stopped: StoppedDaemon[] = [];
  const agents = workerNodes(env, LOCAL);
  return withRestore(async () => {
    const traffic = await sendToRemote(env, rate, 150);
    const sampler = sampleRemoteBackends(env, agents);
    try {
      const before = await Promise.all(agents.map((n) => agentCounts(env, n)));
      const killedAt = Date.now();
      stopped.push(await killDaemon(env.running, apiserverDaemon(REMOTE)), await killDaemon(env.running, etcdDaemon(REMOTE)));
      await rm(dataDirOf(stopped[1]), { recursive: true, force: true });
      for (const daemon of stopped.splice(0).reverse()) startDaemon(env.running, daemon);
      await waitFor(`${REMOTE}'s clustermesh-apiserver to be ready on its empty etcd`, () => apiserverReady(env), Boolean, RESYNC_TIMEOUT_MS);
      const readyAt = Date.now();
      for (const node of agents)
        await waitFor(`${node} to be synced with ${REMOTE} again`, () => agentStatus(env.running, node), (s) => s.remotes.find((r) => r.name === REMOTE)?.ready === true, RESYNC_TIMEOUT_MS);
      await traffic.until(`${SETTLE_SECONDS} s of traffic after the repopulation`, (rs) => requestCount(rs, readyAt) >= SETTLE_SECONDS * rate, RESYNC_TIMEOUT_MS);
      const after = await Promise.all(agents.map((n) => agentCounts(env, n)));
      const fewestRemoteBackends = await sampler.stop();
      const records = await traffic.stop();
      return resultOf('10', 'peer apiserver restarted with an empty etcd', records, {
        ms: readyAt - killedAt,
        meaning: `${REMOTE}'s etcd+apiserver killed, etcd wiped -> apiserver ready again`,
      }, {
        rate,
        answeredBy: answeredBy(records),
        recordDeletes: deltas(agents, before, after, 'recordDeletes'),
        mapDeletes: deltas(agents, before, after, 'mapDeletes'),
        fewestRemoteBackendsProgrammed: fewestRemoteBackends,
      });
    } finally {
      await sampler.stop();
      await traffic.stop();
    }
  }, async () => {
    for (const daemon of stopped.splice(0).reverse()) startDaemon(env.running, daemon);
    await restoreBaseline(env);
  });
}

export async function peerCompaction(env: E2eEnv, rate = RATE): Promise<ScenarioResult> {
  const agents = workerNodes(env, LOCAL);
  const admin = remoteAdminClient(env);
  return withRestore(async () => {
    const traffic = await sendToRemote(env, rate, 90);
    const sampler = sampleRemoteBackends(env, agents);
    try {
      const before = await Promise.all(agents.map((n) => agentCounts(env, n)));
      const startedAt = Date.now();
      const compactedAt: string[] = [];
      for (let i = 0; i < COMPACTIONS; i++) {
        // a write outside every prefix an agent reads moves the revision, so each compaction is new
        const { header } = await admin.put('e2e/compaction-marker').value(String(i)).exec();
        await admin.kv.compact({ revision: header.revision, physical: true });
        compactedAt.push(header.revision);
        const at = Date.now();
        await traffic.until(`a second of traffic after compaction ${i + 1}`, (rs) => requestCount(rs, at) >= rate, CONVERGE_TIMEOUT_MS);
      }
      await admin.delete().key('e2e/compaction-marker').exec();
      const after = await Promise.all(agents.map((n) => agentCounts(env, n)));
      const fewestRemoteBackends = await sampler.stop();
      const records = await traffic.stop();
      return resultOf('11', 'peer compacts its etcd history', records, {
        ms: null,
        meaning: `${COMPACTIONS} compactions of ${REMOTE}'s etcd under load`,
      }, {
        rate,
        compactedAt: compactedAt.join(','),
        durationMs: Date.now() - startedAt,
        answeredBy: answeredBy(records),
        recordDeletes: deltas(agents, before, after, 'recordDeletes'),
        mapDeletes: deltas(agents, before, after, 'mapDeletes'),
        fewestRemoteBackendsProgrammed: fewestRemoteBackends,
      });
    } finally {
      await sampler.stop();
      await traffic.stop();
    }
  }, async () => {
    admin.close();
    await restoreBaseline(env);
  });
}
