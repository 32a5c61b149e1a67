/**
 * Scenarios 1 and 2: east's echo pods go away under load while west's stay; traffic to east's
 * ClusterIP moves to west. Graceful: the EndpointSlice drops them first, then they stop. Abrupt:
 * the pods die while Kubernetes still lists them ready, and only the health checker can tell.
 * Both put east's pods back. The failover bench repeats these.
 */
import { removeBackends } from '../../lab/workloads/deployment.js';
import { type TimedRecord, answeredBy, firstAnswerFrom, recoveryMs } from './analysis.js';
import { type ScenarioResult, resultOf, withRestore } from './result.js';
import { ECHO, type E2eEnv, LOCAL, REMOTE, restoreBaseline } from './suite.js';
import { type Traffic, startTraffic } from './traffic.js';

export const FAILOVER_RATE = 20;
const SWITCH_TIMEOUT_MS = 15_000;
const MAX_CLIENT_SECONDS = 60;

/** The last `n` requests sent since `since` all succeeded, answered by `cluster` (null: by any). Pure. */
export function settledOn(records: readonly TimedRecord[], since: number, cluster: string | null, n: number): boolean {
  const after = records.filter((r) => r.at >= since);
  return after.length >= n && after.slice(-n).every((r) => (cluster === null ? r.error === null : r.cluster === cluster));
}

/** Traffic from the east client, already answered for a second by `cluster` (default east; null: any). */
export async function steadyTraffic(
  env: E2eEnv,
  rate: number,
  options: { cluster?: string | null; vip?: string; udp?: boolean; maxSeconds?: number } = {},
): Promise<Traffic> {
  const cluster = options.cluster === undefined ? LOCAL : options.cluster;
  const traffic = await startTraffic(env, { vip: options.vip ?? env.vips[LOCAL], rate, maxSeconds: options.maxSeconds ?? MAX_CLIENT_SECONDS, udp: options.udp });
  try {
    await traffic.until(`a second of answers from ${cluster ?? 'either cluster'}`, (rs) => settledOn(rs, 0, cluster, rate), SWITCH_TIMEOUT_MS);
  } catch (err) {
    await traffic.stop();
    throw err;
  }
  return traffic;
}

/** Removes east's pods under load; waits until a second of requests has been answered by west. */
async function failOver(env: E2eEnv, graceful: boolean, rate: number, udp = false): Promise<{ records: TimedRecord[]; removedAt: number }> {
  const traffic = await steadyTraffic(env, rate, { udp });
  try {
    const removedAt = Date.now();
    await removeBackends(env.running, ECHO, env.backends[LOCAL], graceful);
    env.backends[LOCAL] = [];
    await traffic.until(`a second of answers from ${REMOTE}`, (rs) => settledOn(rs, removedAt, REMOTE, rate), SWITCH_TIMEOUT_MS);
    return { records: await traffic.stop(), removedAt };
  } finally {
    await traffic.stop();
  }
}

export async function gracefulFailover(env: E2eEnv, rate = FAILOVER_RATE, udp = false): Promise<ScenarioResult> {
  return withRestore(async () => {
    const { records, removedAt } = await failOver(env, true, rate, udp);
    return resultOf(udp ? '9a' : '1', udp ? 'UDP graceful failover' : 'graceful failover', records, {
      ms: firstAnswerFrom(records, REMOTE, removedAt),
      meaning: `first answer from ${REMOTE} after the EndpointSlice update`,
    }, { rate, answeredBy: answeredBy(records) });
  }, () => restoreBaseline(env));
}

export async function abruptFailover(env: E2eEnv, rate = FAILOVER_RATE): Promise<ScenarioResult> {
  return withRestore(async () => {
    const { records, removedAt } = await failOver(env, false, rate);
    return resultOf('2', 'abrupt failover', records, {
      ms: recoveryMs(records, removedAt),
      meaning: `pods killed -> first success after the last failure`,
    }, { rate, firstAnswerFromRemoteMs: firstAnswerFrom(records, REMOTE, removedAt) ?? null, answeredBy: answeredBy(records) });
  }, () => restoreBaseline(env));
}
