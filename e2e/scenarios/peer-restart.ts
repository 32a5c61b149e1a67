/**
 * Scenarios 10 and 11: west's control plane starts over from nothing, and west compacts its etcd
 * history, each while east sends to west's backends (east's own removed first).
 *
 * 10: west's clustermesh-apiserver pod is deleted; its Deployment starts a new one, whose etcd
 * (an emptyDir in the chart) is empty; the apiserver recreates its users and config and
 * repopulates. Whoever reads west's etcd (east's agents in direct mode, east's kvstoremesh in
 * cached mode: peer-readers.ts) keeps west's records until west's sync canaries are back
 * (lib/kvstore/watch-store.ts): no request fails, no east agent deletes a record of west or a map
 * entry.
 * 11: west's etcd compacts its whole history several times (what a peer's read-only user may do on
 * etcd 3.4.23, see README "Trust"): nothing fails and nothing leaves the maps.
 */
import { removeBackends } from '../../lab/workloads/deployment.js';
import { agentMetricsText, agentStatus, metricByLabel } from './agents.js';
import { answeredBy, requestCount } from './analysis.js';
import { apiserverEtcdAdmin, apiserverReady, deleteApiserverPod } from './daemons.js';
import { FAILOVER_RATE, steadyTraffic } from './failover.js';
import { peerReaders } from './peer-readers.js';
import { type Fact, type ScenarioResult, resultOf, withRestore } from './result.js';
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
    // services only: the deleted pod's own ipcache entry and identity go, as they should
    recordDeletes: metricByLabel(metrics, RECORD_EVENTS_METRIC, 'op', { kind: 'service' }).delete ?? 0,
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

/** What a scenario's fault reports: the result's headline and the facts of its own. */
interface FaultOutcome {
  id: string;
  scenario: string;
  recovery: { ms: number | null; meaning: string };
  facts: Record<string, Fact>;
}

/**
 * Runs `fault` on west while east sends to west's backends, and measures what both scenarios
 * report: what every east agent deleted across the fault (records and map entries), and the fewest
 * of west's backends any of them had programmed meanwhile.
 */
async function underRemoteTraffic(env: E2eEnv, rate: number, maxSeconds: number, fault: (traffic: Traffic) => Promise<FaultOutcome>): Promise<ScenarioResult> {
  const agents = workerNodes(env, LOCAL);
  const traffic = await sendToRemote(env, rate, maxSeconds);
  const sampler = sampleRemoteBackends(env, agents);
  try {
    const before = await Promise.all(agents.map((n) => agentCounts(env, n)));
    const outcome = await fault(traffic);
    const after = await Promise.all(agents.map((n) => agentCounts(env, n)));
    const fewestRemoteBackends = await sampler.stop();
    const records = await traffic.stop();
    return resultOf(outcome.id, outcome.scenario, records, outcome.recovery, {
      rate,
      ...outcome.facts,
      answeredBy: answeredBy(records),
      recordDeletes: deltas(agents, before, after, 'recordDeletes'),
      mapDeletes: deltas(agents, before, after, 'mapDeletes'),
      fewestRemoteBackendsProgrammed: fewestRemoteBackends,
    });
  } finally {
    await sampler.stop();
    await traffic.stop();
  }
}

export async function peerRestartEmpty(env: E2eEnv, rate = RATE): Promise<ScenarioResult> {
  return withRestore(
    () =>
      underRemoteTraffic(env, rate, 150, async (traffic) => {
        const killedAt = Date.now();
        const deleted = await deleteApiserverPod(env.running, REMOTE);
        await waitFor(`a new ${REMOTE} clustermesh-apiserver pod to be ready on its empty etcd`, () => apiserverReady(env.running, REMOTE, deleted), Boolean, RESYNC_TIMEOUT_MS);
        const readyAt = Date.now();
        for (const reader of peerReaders(env))
          await waitFor(`${reader.name} to be synced with ${REMOTE} again`, () => reader.linked(), Boolean, RESYNC_TIMEOUT_MS);
        await traffic.until(`${SETTLE_SECONDS} s of traffic after the repopulation`, (rs) => requestCount(rs, readyAt) >= SETTLE_SECONDS * rate, RESYNC_TIMEOUT_MS);
        return {
          id: '10',
          scenario: 'peer apiserver restarted with an empty etcd',
          recovery: { ms: readyAt - killedAt, meaning: `${REMOTE}'s clustermesh-apiserver pod deleted -> a new pod (empty etcd) ready` },
          facts: {},
        };
      }),
    () => restoreBaseline(env),
  );
}

export async function peerCompaction(env: E2eEnv, rate = RATE): Promise<ScenarioResult> {
  const admin = await apiserverEtcdAdmin(env.running, REMOTE);
  return withRestore(
    () =>
      underRemoteTraffic(env, rate, 90, async (traffic) => {
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
        return {
          id: '11',
          scenario: 'peer compacts its etcd history',
          recovery: { ms: null, meaning: `${COMPACTIONS} compactions of ${REMOTE}'s etcd under load` },
          facts: { compactedAt: compactedAt.join(','), durationMs: Date.now() - startedAt },
        };
      }),
    async () => {
      admin.close();
      await restoreBaseline(env);
    },
  );
}
