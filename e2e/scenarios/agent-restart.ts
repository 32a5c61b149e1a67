/**
 * Scenario 5: the agent of the client's node is SIGKILLed under load and started again. The maps
 * stay pinned and attached while it is gone, and the new agent restores from them: no request fails
 * and the programmed backends are the same afterwards.
 */
import { agentStatus, findFrontend } from './agents.js';
import { answeredBy, requestCount } from './analysis.js';
import { restartAgent } from './daemons.js';
import { FAILOVER_RATE, steadyTraffic } from './failover.js';
import { type ScenarioResult, resultOf, withRestore } from './result.js';
import { CLIENT_NODE, CONVERGE_TIMEOUT_MS, type E2eEnv, LOCAL, SERVICE_PORT, restoreBaseline } from './suite.js';
import { waitFor } from './wait.js';

async function programmedBackends(env: E2eEnv): Promise<string> {
  return JSON.stringify(findFrontend(await agentStatus(env.running, CLIENT_NODE), env.vips[LOCAL], SERVICE_PORT)?.backends ?? null);
}

export async function agentRestartUnderLoad(env: E2eEnv, rate = FAILOVER_RATE): Promise<ScenarioResult> {
  return withRestore(async () => {
    const traffic = await steadyTraffic(env, rate);
    try {
      const before = await programmedBackends(env);
      const killedAt = Date.now();
      await restartAgent(env.running, CLIENT_NODE);
      await waitFor(`the restarted agent on ${CLIENT_NODE} ready`, () => agentStatus(env.running, CLIENT_NODE), (s) => s.ready, CONVERGE_TIMEOUT_MS);
      const readyAt = Date.now();
      await traffic.until('a second of traffic after the restart', (rs) => requestCount(rs, readyAt) >= rate, CONVERGE_TIMEOUT_MS);
      const after = await programmedBackends(env);
      const records = await traffic.stop();
      return resultOf('5', 'agent SIGKILL + restart', records, {
        ms: readyAt - killedAt,
        meaning: 'agent killed -> restarted agent ready',
      }, { rate, answeredBy: answeredBy(records), answeredWhileRestarting: answeredBy(records, killedAt, readyAt), backendsUnchanged: before === after });
    } finally {
      await traffic.stop();
    }
  }, () => restoreBaseline(env));
}
