/**
 * Scenario 3: failback with affinity local and min-healthy-local 2. East's echo servers are killed
 * while their nodes' kubelets are frozen (pods and endpoints stay: the health checker quarantines
 * them) and traffic runs on west; then the kubelets thaw one at a time and restart them. With one healthy local backend west must stay in use; only with
 * two does traffic return to east alone.
 */
import { killPodProcesses } from '../../lab/workloads/sandbox.js';
import { answeredBy, firstAnswerFrom } from './analysis.js';
import { type FrozenNode, freezeKubelet } from './daemons.js';
import { FAILOVER_RATE, settledOn } from './failover.js';
import { type ScenarioResult, resultOf, withRestore } from './result.js';
import { CLIENT_NODE, CONVERGE_TIMEOUT_MS, type E2eEnv, LOCAL, REMOTE, echoBackends, restoreBaseline, setServicePolicy } from './suite.js';
import { startTraffic } from './traffic.js';
import { waitFor } from './wait.js';

const MIN_HEALTHY_LOCAL = 2;
/** how long traffic is watched with one local backend back: several probe intervals and reconciles */
const ONE_BACK_WINDOW_REQUESTS = 2 * FAILOVER_RATE;

const activeOnClientNode = (env: E2eEnv) => echoBackends(env, CLIENT_NODE, 'active');

export async function failbackMinHealthy(env: E2eEnv, rate = FAILOVER_RATE): Promise<ScenarioResult> {
  const stopped: FrozenNode[] = [];
  return withRestore(async () => {
    await setServicePolicy(env, LOCAL, { affinity: 'local', minHealthyLocal: MIN_HEALTHY_LOCAL });
    const nodes = [...new Set(env.backends[LOCAL].map((b) => b.node))];
    if (nodes.length !== env.backends[LOCAL].length) throw new Error(`${LOCAL}'s echo pods must be on distinct nodes: ${JSON.stringify(env.backends[LOCAL])}`);
    stopped.push(...nodes.map((node) => freezeKubelet(env.running, node)));
    for (const backend of env.backends[LOCAL]) await killPodProcesses(env.running, backend.node, backend.pod);
    await waitFor(`${LOCAL}'s killed backends quarantined and ${REMOTE}'s active`, () => activeOnClientNode(env),
      (a) => !a[LOCAL] && a[REMOTE] === 2, CONVERGE_TIMEOUT_MS);

    const traffic = await startTraffic(env, { vip: env.vips[LOCAL], rate, maxSeconds: 60 });
    try {
      await traffic.until(`a second of answers from ${REMOTE}`, (rs) => settledOn(rs, 0, REMOTE, rate), CONVERGE_TIMEOUT_MS);

      const oneBackAt = Date.now();
      stopped.shift()!.thaw();
      const oneBack = await waitFor(`one ${LOCAL} backend healthy again`, () => activeOnClientNode(env), (a) => a[LOCAL] === 1, CONVERGE_TIMEOUT_MS);
      const oneHealthyAt = Date.now();
      const window = await traffic.until(`${ONE_BACK_WINDOW_REQUESTS} requests with one ${LOCAL} backend healthy`,
        (rs) => rs.filter((r) => r.at >= oneHealthyAt).length >= ONE_BACK_WINDOW_REQUESTS, CONVERGE_TIMEOUT_MS);
      const withOneLocal = answeredBy(window, oneHealthyAt);

      const bothBackAt = Date.now();
      stopped.shift()!.thaw();
      await waitFor(`both ${LOCAL} backends healthy and ${REMOTE}'s out of use`, () => activeOnClientNode(env), (a) => a[LOCAL] === 2 && !a[REMOTE], CONVERGE_TIMEOUT_MS);
      await traffic.until(`a second of answers from ${LOCAL} alone`, (rs) => settledOn(rs, bothBackAt, LOCAL, rate), CONVERGE_TIMEOUT_MS);
      const records = await traffic.stop();
      const lastRemote = records.filter((r) => r.at >= bothBackAt && r.cluster === REMOTE).pop();
      return resultOf('3', 'failback, min-healthy-local 2', records, {
        ms: lastRemote ? lastRemote.at - bothBackAt : 0,
        meaning: `second ${LOCAL} backend started -> last answer from ${REMOTE}`,
      }, {
        rate,
        activeWithOneLocal: oneBack,
        answeredWithOneLocal: withOneLocal,
        oneLocalHealthyAfterMs: oneHealthyAt - oneBackAt,
        firstLocalAnswerAfterOneBackMs: firstAnswerFrom(records, LOCAL, oneBackAt) ?? null,
        answeredBy: answeredBy(records),
      });
    } finally {
      await traffic.stop();
    }
  }, async () => {
    for (const node of stopped.splice(0)) node.thaw();
    await restoreBaseline(env, { policy: true });
  });
}
