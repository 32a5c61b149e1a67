/**
 * Scenario 7: west dies silently. The bridge ends of west's node links are set down (the cables
 * pulled), so west's etcd and pods stop answering without a single reset. East uses both clusters
 * (affinity none); its health checker quarantines west's backends (requests to them time out until
 * then), and once the peer has been silent for the cache TTL the agents drop its backends from the
 * maps (cached mode: the kvstoremesh drops its cache of the peer after its TTL, and the agents,
 * reading that cache, follow). The links come back up afterwards and the agents reconnect.
 */
import { ipBatch } from '../../lab/topology/host.js';
import { answeredBy, failedCount, lastFailureMs, requestCount } from './analysis.js';
import { useBothClusters } from './disconnect.js';
import { FAILOVER_RATE, settledOn, steadyTraffic } from './failover.js';
import { type ScenarioResult, resultOf, withRestore } from './result.js';
import { CLIENT_NODE, CONVERGE_TIMEOUT_MS, type E2eEnv, LOCAL, REMOTE, echoBackends, restoreBaseline, waitConnected, workerNodes } from './suite.js';
import { waitFor } from './wait.js';

/** the ends, on the lab bridge, of every node link of `cluster` */
function bridgePorts(env: E2eEnv, cluster: string): { netns: string; names: string[] } {
  const nodes = new Set(env.running.plan.nodes.filter((n) => n.cluster === cluster).map((n) => n.netns));
  const ends = env.running.plan.veths.filter(([nodeEnd]) => nodes.has(nodeEnd.netns)).map(([, bridgeEnd]) => bridgeEnd);
  return { netns: env.running.plan.bridge.netns, names: ends.map((e) => e.name) };
}

async function setLinks(env: E2eEnv, cluster: string, state: 'up' | 'down'): Promise<void> {
  const ports = bridgePorts(env, cluster);
  await ipBatch(ports.names.map((name) => `link set ${name} ${state}`), ports.netns);
}

export async function deadCluster(env: E2eEnv, rate = FAILOVER_RATE): Promise<ScenarioResult> {
  let pulled = false;
  const dropTimeoutMs = env.peerCacheTtlMs + CONVERGE_TIMEOUT_MS;
  return withRestore(async () => {
    await useBothClusters(env);
    const traffic = await steadyTraffic(env, rate, { cluster: null, maxSeconds: Math.ceil(dropTimeoutMs / 1000) + 30 });
    try {
      await traffic.until(`answers from ${REMOTE} too`, (rs) => (answeredBy(rs)[REMOTE] ?? 0) > 0, CONVERGE_TIMEOUT_MS);
      const pulledAt = Date.now();
      await setLinks(env, REMOTE, 'down');
      pulled = true;
      await waitFor(`${CLIENT_NODE} to stop using ${REMOTE}'s backends`, () => echoBackends(env, CLIENT_NODE, 'active'), (a) => !a[REMOTE], CONVERGE_TIMEOUT_MS);
      const quarantinedAt = Date.now();
      await traffic.until(`a second of answers from ${LOCAL} alone`, (rs) => settledOn(rs, quarantinedAt, LOCAL, rate), CONVERGE_TIMEOUT_MS);
      for (const node of workerNodes(env, LOCAL))
        await waitFor(`${REMOTE}'s backends to leave ${node}'s maps after the cache TTL`, () => echoBackends(env, node), (all) => !all[REMOTE], dropTimeoutMs);
      const droppedAt = Date.now();
      await traffic.until('a second of traffic after the drop', (rs) => requestCount(rs, droppedAt) >= rate, CONVERGE_TIMEOUT_MS);
      const records = await traffic.stop();
      return resultOf('7', 'dead cluster (links pulled)', records, {
        ms: lastFailureMs(records, pulledAt),
        meaning: `links pulled -> last request sent to ${REMOTE}`,
      }, {
        rate,
        quarantinedAfterMs: quarantinedAt - pulledAt,
        droppedFromMapsAfterMs: droppedAt - pulledAt,
        peerCacheTtlMs: env.peerCacheTtlMs,
        failedAfterQuarantine: failedCount(records, quarantinedAt),
        answeredBy: answeredBy(records),
        answeredAfterDrop: answeredBy(records, droppedAt),
      });
    } finally {
      await traffic.stop();
    }
  }, async () => {
    if (pulled) {
      await setLinks(env, REMOTE, 'up');
      await waitConnected(env);
    }
    await restoreBaseline(env, { policy: true });
  });
}
