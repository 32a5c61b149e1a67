/**
 * Scenario 9: the other two address/protocol paths. UDP: the graceful failover with datagrams (the
 * sendmsg/recvmsg hooks translate per socket). IPv6: a dual-stack global Service `e2e/echo6` on the
 * echo pods in both clusters (affinity none), reached on its IPv6 ClusterIP; both clusters answer
 * over IPv6 and nothing fails. The IPv6 Service is removed afterwards.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { labApi } from '../../lab/cluster/api.js';
import { nthAddress, parseCidr } from '../../lib/net/cidr.js';
import { SERVICE_ANNOTATIONS } from '../../lib/k8s/annotations.js';
import { agentStatus, backendsByCluster, findFrontend } from './agents.js';
import { answeredBy } from './analysis.js';
import { FAILOVER_RATE, gracefulFailover, settledOn } from './failover.js';
import { type ScenarioResult, resultOf, withRestore } from './result.js';
import { CONVERGE_TIMEOUT_MS, ECHO, type E2eEnv, LOCAL, REMOTE, SERVICE_PORT, clusterNames, workerNodes } from './suite.js';
import { startTraffic } from './traffic.js';
import { waitFor } from './wait.js';

export const ECHO6 = { namespace: ECHO.namespace, name: `${ECHO.name}6` };
const VIP_INDEX = 21;

export async function udpFailover(env: E2eEnv, rate = FAILOVER_RATE): Promise<ScenarioResult> {
  return gracefulFailover(env, rate, true);
}

/** The dual-stack Service over the echo pods (the EndpointSlice controller makes one slice per family). */
function dualStackService(vips: { v4: string; v6: string }): KubernetesObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { ...ECHO6, annotations: { [SERVICE_ANNOTATIONS.global[0]]: 'true', [SERVICE_ANNOTATIONS.affinity[0]]: 'none' } },
    spec: {
      type: 'ClusterIP',
      clusterIP: vips.v4,
      clusterIPs: [vips.v4, vips.v6],
      ipFamilies: ['IPv4', 'IPv6'],
      ipFamilyPolicy: 'RequireDualStack',
      selector: { app: ECHO.name },
      ports: [{ name: 'tcp', protocol: 'TCP', port: SERVICE_PORT, targetPort: ECHO.targetPort }],
    },
  } as KubernetesObject;
}

function dualStackVips(env: E2eEnv, cluster: string): { v4: string; v6: string } {
  const plan = env.running.plan.clusters.find((c) => c.name === cluster)!;
  return { v4: nthAddress(parseCidr(plan.serviceCIDRv4), VIP_INDEX), v6: nthAddress(parseCidr(plan.serviceCIDRv6), VIP_INDEX) };
}

export async function ipv6DualStack(env: E2eEnv, rate = FAILOVER_RATE): Promise<ScenarioResult> {
  const objects = clusterNames(env).map((cluster) => ({ cluster, objects: [dualStackService(dualStackVips(env, cluster))] }));
  const vip6 = dualStackVips(env, LOCAL).v6;
  return withRestore(async () => {
    for (const { cluster, objects: list } of objects) for (const o of list) await labApi(env.running.kubeconfig, cluster).put(o);
    const createdAt = Date.now();
    for (const node of workerNodes(env, LOCAL))
      await waitFor(`${node} to program ${ECHO6.name} on [${vip6}]:${SERVICE_PORT} with both clusters`, async () =>
        backendsByCluster(findFrontend(await agentStatus(env.running, node), vip6, SERVICE_PORT), 'active'),
        (a) => a[LOCAL] === 2 && a[REMOTE] === 2, CONVERGE_TIMEOUT_MS);
    const programmedAt = Date.now();
    const traffic = await startTraffic(env, { vip: vip6, rate, maxSeconds: 30 });
    try {
      await traffic.until(`two seconds of answers over IPv6, from both clusters`, (rs) => {
        const by = answeredBy(rs);
        return settledOn(rs, 0, null, 2 * rate) && (by[LOCAL] ?? 0) > 0 && (by[REMOTE] ?? 0) > 0;
      }, CONVERGE_TIMEOUT_MS);
      const records = await traffic.stop();
      return resultOf('9b', 'IPv6 ClusterIP, dual-stack global service', records, {
        ms: programmedAt - createdAt,
        meaning: `Service created -> every ${LOCAL} agent programs its IPv6 frontend with both clusters`,
      }, { rate, vip: vip6, answeredBy: answeredBy(records) });
    } finally {
      await traffic.stop();
    }
  }, async () => {
    for (const { cluster, objects: list } of objects) for (const o of list) await labApi(env.running.kubeconfig, cluster).remove(o);
    for (const node of workerNodes(env, LOCAL))
      await waitFor(`${node} to drop ${ECHO6.name}`, () => agentStatus(env.running, node), (s) => !findFrontend(s, vip6, SERVICE_PORT), CONVERGE_TIMEOUT_MS);
  });
}
