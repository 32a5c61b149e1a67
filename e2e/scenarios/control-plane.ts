/**
 * Scenario 4: west's clustermesh-apiserver pod (etcd and clustermesh-apiserver) is down for 12 s —
 * its processes killed while its node's kubelet is frozen — while east sends to west's backends
 * (east's own were removed first). Whoever reads west's etcd (the agents in direct mode, east's
 * kvstoremesh in cached mode: peer-readers.ts) keeps the peer's last known records (cache TTL), so
 * no request fails; when the kubelet restarts the containers (same pod, so etcd's emptyDir is
 * kept) and the readers resync, nothing in the maps changes: no map write at all.
 */
import { removeBackends } from '../../lab/workloads/deployment.js';
import { killPodProcesses } from '../../lab/workloads/sandbox.js';
import { agentStatus, findFrontend, mapWrites } from './agents.js';
import { answeredBy, requestCount } from './analysis.js';
import { type FrozenNode, apiserverPod, freezeKubelet } from './daemons.js';
import { FAILOVER_RATE, steadyTraffic } from './failover.js';
import { peerReaders, peerReadersName } from './peer-readers.js';
import { type ScenarioResult, resultOf, withRestore } from './result.js';
import { CONVERGE_TIMEOUT_MS, ECHO, type E2eEnv, LOCAL, REMOTE, SERVICE_PORT, echoBackends, restoreBaseline, workerNodes } from './suite.js';
import { hold, waitFor } from './wait.js';

/** time for every reader to notice; with the restart after it, shorter than the suite's cache TTL (suite.ts) */
export const OUTAGE_MS = 12_000;
const RATE = FAILOVER_RATE / 2;
/** reconnect after the outage: etcd start, the agents' backoff (≤ 5 s), resync */
const RECONNECT_TIMEOUT_MS = 30_000;

interface AgentSnapshot {
  writes: number;
  /** the echo frontend's backends and their states, as the agent programmed them */
  frontend: string;
}

async function snapshot(env: E2eEnv, node: string): Promise<AgentSnapshot> {
  const status = await agentStatus(env.running, node);
  return { writes: mapWrites(status), frontend: JSON.stringify(findFrontend(status, env.vips[LOCAL], SERVICE_PORT)?.backends) };
}

export async function peerControlPlaneDown(env: E2eEnv, rate = RATE): Promise<ScenarioResult> {
  const frozen: FrozenNode[] = [];
  const agents = workerNodes(env, LOCAL);
  const readers = peerReaders(env);
  return withRestore(async () => {
    await removeBackends(env.running, ECHO, env.backends[LOCAL], true);
    env.backends[LOCAL] = [];
    for (const node of agents)
      await waitFor(`${node} to use only ${REMOTE}'s backends`, () => echoBackends(env, node, 'active'), (a) => !a[LOCAL] && a[REMOTE] === 2, CONVERGE_TIMEOUT_MS);
    const traffic = await steadyTraffic(env, rate, { cluster: REMOTE, maxSeconds: 90 });
    try {
      const before = await Promise.all(agents.map((n) => snapshot(env, n)));
      const downAt = Date.now();
      const pod = await apiserverPod(env.running, REMOTE);
      frozen.push(freezeKubelet(env.running, pod.node));
      await killPodProcesses(env.running, pod.node, pod.name);
      await Promise.all(readers.map((r) => waitFor(`${r.name} to notice ${REMOTE}'s etcd is gone`, () => r.linked(), (linked) => !linked, OUTAGE_MS)));
      await hold(downAt + OUTAGE_MS - Date.now());
      const upAt = Date.now();
      for (const node of frozen.splice(0)) node.thaw();
      await Promise.all(readers.map((r) => waitFor(`${r.name} to resync with ${REMOTE}`, () => r.linked(), Boolean, RECONNECT_TIMEOUT_MS)));
      const resyncedAt = Date.now();
      await traffic.until('a second of traffic after the resync', (rs) => requestCount(rs, resyncedAt) >= rate, CONVERGE_TIMEOUT_MS);
      const after = await Promise.all(agents.map((n) => snapshot(env, n)));
      const records = await traffic.stop();
      return resultOf('4', `peer control plane down ${OUTAGE_MS / 1000} s`, records, {
        ms: resyncedAt - upAt,
        meaning: `${REMOTE}'s etcd+apiserver restarted -> ${peerReadersName(env)} resynced`,
      }, {
        rate,
        answeredBy: answeredBy(records),
        answeredDuringOutage: answeredBy(records, downAt, upAt),
        mapWritesOutageAndResync: Object.fromEntries(agents.map((n, i) => [n, after[i].writes - before[i].writes])),
        backendsUnchanged: agents.every((_, i) => after[i].frontend === before[i].frontend),
      });
    } finally {
      await traffic.stop();
    }
  }, async () => {
    for (const node of frozen.splice(0)) node.thaw();
    await restoreBaseline(env);
  });
}
