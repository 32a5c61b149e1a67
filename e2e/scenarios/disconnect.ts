/**
 * Scenario 6: `clustermesh disconnect` under load. East's Service uses both clusters (affinity
 * none) so west's backends carry traffic; after the disconnect they leave every east agent's maps,
 * traffic stays in east and nothing fails. Reconnecting (`clustermesh connect`) restores the link.
 */
import { LAB_NAMESPACE } from '../../lab/cluster/index.js';
import { disconnectClusters } from '../../cli/connect.js';
import { labHooks } from '../../cli/lab-up.js';
import { openCluster } from '../../cli/kube.js';
import { answeredBy } from './analysis.js';
import { FAILOVER_RATE, settledOn, steadyTraffic } from './failover.js';
import { type ScenarioResult, resultOf, withRestore } from './result.js';
import { CONVERGE_TIMEOUT_MS, type E2eEnv, LOCAL, REMOTE, echoBackends, restoreBaseline, setServicePolicy, waitConnected, workerNodes } from './suite.js';
import { waitFor } from './wait.js';

/** Every east agent uses (affinity none) both clusters' backends. */
export async function useBothClusters(env: E2eEnv): Promise<void> {
  await setServicePolicy(env, LOCAL, { affinity: 'none' });
  for (const node of workerNodes(env, LOCAL))
    await waitFor(`${node} to use both clusters`, () => echoBackends(env, node, 'active'), (a) => a[LOCAL] === 2 && a[REMOTE] === 2, CONVERGE_TIMEOUT_MS);
}

export async function disconnectUnderLoad(env: E2eEnv, rate = FAILOVER_RATE): Promise<ScenarioResult> {
  const kubeconfig = env.running.kubeconfig;
  let disconnected = false;
  return withRestore(async () => {
    await useBothClusters(env);
    const traffic = await steadyTraffic(env, rate, { cluster: null });
    try {
      await traffic.until(`answers from ${REMOTE} too`, (rs) => (answeredBy(rs)[REMOTE] ?? 0) > 0, CONVERGE_TIMEOUT_MS);
      const disconnectedAt = Date.now();
      await disconnectClusters(openCluster(kubeconfig, LOCAL), openCluster(kubeconfig, REMOTE), LAB_NAMESPACE);
      disconnected = true;
      for (const node of workerNodes(env, LOCAL))
        await waitFor(`${REMOTE}'s backends to leave ${node}'s maps`, () => echoBackends(env, node), (all) => !all[REMOTE] && all[LOCAL] === 2, CONVERGE_TIMEOUT_MS);
      const drainedAt = Date.now();
      await traffic.until(`a second of answers from ${LOCAL} alone`, (rs) => settledOn(rs, drainedAt, LOCAL, rate), CONVERGE_TIMEOUT_MS);
      const records = await traffic.stop();
      return resultOf('6', 'clustermesh disconnect', records, {
        ms: drainedAt - disconnectedAt,
        meaning: `disconnect -> ${REMOTE}'s backends gone from every ${LOCAL} agent`,
      }, { rate, answeredBy: answeredBy(records), answeredAfterDrain: answeredBy(records, drainedAt) });
    } finally {
      await traffic.stop();
    }
  }, async () => {
    if (disconnected) {
      await labHooks.connect(kubeconfig, LOCAL, REMOTE);
      await waitConnected(env);
    }
    await restoreBaseline(env, { policy: true });
  });
}
