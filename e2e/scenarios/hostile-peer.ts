/**
 * Scenario 8: a hostile peer. A process holding west's etcd admin certificate writes records that
 * claim to be east, carry a wrong cluster ID, are garbage, or are 1 MiB, under the prefixes east's
 * agents read from west. Each agent must reject and count every one of them, and neither its maps
 * nor the traffic may change. One more record sits under east's own prefix in west's etcd: no
 * agent reads it, so it must change nothing either. The records are deleted afterwards.
 */
import { join } from 'node:path';
import { createEtcdClient, loadEtcdClientConfig } from '../../lib/kvstore/etcd.js';
import { identityKey, nodeKey, serviceKey } from '../../lib/kvstore/keys.js';
import { IDENTITY_CLUSTER_SHIFT } from '../../lib/kvstore/codecs.js';
import { LAB_PORTS } from '../../lab/cluster/paths.js';
import { agentMetricsText, agentStatus, findFrontend, mapWrites, metricByLabel } from './agents.js';
import { answeredBy, requestCount } from './analysis.js';
import { FAILOVER_RATE, steadyTraffic } from './failover.js';
import { type ScenarioResult, resultOf, withRestore } from './result.js';
import { CONVERGE_TIMEOUT_MS, ECHO, type E2eEnv, LOCAL, REMOTE, SERVICE_PORT, restoreBaseline, workerNodes } from './suite.js';
import { waitFor } from './wait.js';

export const REJECTED_METRIC = 'clustermesh_agent_rejected_records_total';
const ONE_MIB = 1024 * 1024;

export interface HostileRecord {
  what: string;
  key: string;
  value: string;
  /** under a prefix east's agents read from this peer (so they must see and reject it) */
  read: boolean;
}

/** What the hostile peer writes into `peer`'s etcd, pretending things about `victim`. Pure. */
export function hostileRecords(peer: { name: string; id: number }, victim: { name: string; id: number; podIP: string }): HostileRecord[] {
  const service = (cluster: string, name: string, clusterID: number) =>
    JSON.stringify({
      cluster,
      namespace: ECHO.namespace,
      name,
      frontends: {},
      backends: { [victim.podIP]: { tcp: { Protocol: 'TCP', Port: ECHO.targetPort } } },
      labels: {},
      selector: { app: name },
      includeExternal: true,
      shared: true,
      clusterID,
    });
  return [
    { what: `service claiming to be ${victim.name}`, key: serviceKey(peer.name, ECHO.namespace, 'hostile-claim'), value: service(victim.name, 'hostile-claim', victim.id), read: true },
    { what: 'service with a mismatched cluster ID', key: serviceKey(peer.name, ECHO.namespace, 'hostile-id'), value: service(peer.name, 'hostile-id', 200), read: true },
    { what: 'garbage', key: serviceKey(peer.name, ECHO.namespace, 'hostile-garbage'), value: '\u0000{"cluster": garbage ]]', read: true },
    { what: '1 MiB value', key: serviceKey(peer.name, ECHO.namespace, 'hostile-huge'), value: 'x'.repeat(ONE_MIB), read: true },
    {
      what: `node claiming to be ${victim.name}`,
      key: nodeKey(peer.name, `${victim.name}-impostor`),
      value: JSON.stringify({ Name: `${victim.name}-impostor`, Cluster: victim.name, ClusterID: victim.id, IPAddresses: [{ Type: 'InternalIP', IP: victim.podIP }] }),
      read: true,
    },
    {
      what: `identity in ${victim.name}'s ID range`,
      key: identityKey((victim.id << IDENTITY_CLUSTER_SHIFT) | 4242),
      value: `k8s:app=${ECHO.name};k8s:io.cilium.k8s.policy.cluster=${victim.name};k8s:io.kubernetes.pod.namespace=${ECHO.namespace};`,
      read: true,
    },
    { what: `${victim.name}'s own service, rewritten in ${peer.name}'s etcd`, key: serviceKey(victim.name, ECHO.namespace, ECHO.name), value: service(victim.name, ECHO.name, victim.id), read: false },
  ];
}

/** An etcd client with west's admin certificate (what the hostile process holds). */
function adminClient(env: E2eEnv) {
  const pki = env.running.paths.pki(REMOTE);
  const cp = env.running.plan.nodes.find((n) => n.cluster === REMOTE && n.role === 'control-plane')!;
  return createEtcdClient(
    loadEtcdClientConfig({ endpoints: [`https://${cp.ipv4}:${LAB_PORTS.etcd}`], caFile: join(pki, 'ca.crt'), certFile: join(pki, 'admin.crt'), keyFile: join(pki, 'admin.key') }),
  );
}

interface AgentCounters {
  rejected: number;
  writes: number;
  frontend: string;
}

async function counters(env: E2eEnv, node: string): Promise<AgentCounters> {
  const status = await agentStatus(env.running, node);
  return {
    rejected: status.remotes.find((r) => r.name === REMOTE)?.rejected ?? 0,
    writes: mapWrites(status),
    frontend: JSON.stringify(findFrontend(status, env.vips[LOCAL], SERVICE_PORT)?.backends),
  };
}

async function rejectionReasons(env: E2eEnv, node: string): Promise<Record<string, number>> {
  return metricByLabel(await agentMetricsText(env.running, node), REJECTED_METRIC, 'reason');
}

export async function hostilePeer(env: E2eEnv, rate = FAILOVER_RATE): Promise<ScenarioResult> {
  const etcd = adminClient(env);
  const victim = env.running.plan.clusters.find((c) => c.name === LOCAL)!;
  const peer = env.running.plan.clusters.find((c) => c.name === REMOTE)!;
  const records = hostileRecords(peer, { name: victim.name, id: victim.id, podIP: env.backends[LOCAL][0].ipv4 });
  const expected = records.filter((r) => r.read).length;
  const agents = workerNodes(env, LOCAL);
  return withRestore(async () => {
    const traffic = await steadyTraffic(env, rate);
    try {
      const before = await Promise.all(agents.map((n) => counters(env, n)));
      const reasonsBefore = await rejectionReasons(env, agents[0]);
      const writtenAt = Date.now();
      for (const r of records) await etcd.put(r.key).value(r.value).exec();
      const after = await Promise.all(
        agents.map((n, i) =>
          waitFor(`${n} to reject all ${expected} hostile records`, () => counters(env, n), (c) => c.rejected - before[i].rejected >= expected, CONVERGE_TIMEOUT_MS),
        ),
      );
      const countedAt = Date.now();
      await traffic.until('a second of traffic after the rejections', (rs) => requestCount(rs, countedAt) >= rate, CONVERGE_TIMEOUT_MS);
      const settled = await Promise.all(agents.map((n) => counters(env, n)));
      const reasonsAfter = await rejectionReasons(env, agents[0]);
      const reasons = Object.fromEntries(Object.entries(reasonsAfter).map(([k, v]) => [k, v - (reasonsBefore[k] ?? 0)]).filter(([, v]) => v !== 0));
      const all = await traffic.stop();
      return resultOf('8', 'hostile peer records', all, { ms: countedAt - writtenAt, meaning: `records written -> every ${LOCAL} agent rejected them all` }, {
        rate,
        written: records.length,
        inReadPrefixes: expected,
        rejectedPerAgent: Object.fromEntries(agents.map((n, i) => [n, after[i].rejected - before[i].rejected])),
        [`rejectedByReason(${agents[0]})`]: reasons,
        mapWritesPerAgent: Object.fromEntries(agents.map((n, i) => [n, settled[i].writes - before[i].writes])),
        backendsUnchanged: agents.every((_, i) => settled[i].frontend === before[i].frontend),
        answeredBy: answeredBy(all),
      });
    } finally {
      await traffic.stop();
    }
  }, async () => {
    try {
      for (const r of records) await etcd.delete().key(r.key).exec();
    } finally {
      etcd.close();
    }
    await restoreBaseline(env);
  });
}
