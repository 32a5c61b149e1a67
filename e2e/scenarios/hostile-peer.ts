/**
 * Scenario 8: a hostile peer. A process holding west's etcd admin certificate writes, under the
 * prefixes east's agents read from west:
 * - records that claim to be east, carry a wrong cluster ID, are garbage, or are 1 MiB (refused by
 *   the import validation, lib/kvstore/validate.ts);
 * - records that parse but point at addresses west does not own (refused by address ownership,
 *   lib/kvstore/ownership.ts): backends of a global Service of east on loopback, unspecified,
 *   multicast, broadcast, link-local and IPv4-mapped addresses, east's own pods, ClusterIPs, node
 *   IPs and service range; node records claiming east's ranges or the whole address space; ipcache
 *   entries for east's pods and loopback.
 * Each one must be refused and counted under the expected reason: in direct mode by every agent;
 * in cached mode by east's kvstoremesh, which validates as the agents do, address ownership
 * included (it reads east's Nodes and Services and the chart's ranges): no forged record, backend
 * or entry reaches the cache the agents read (the forged Service is cached without its backends),
 * so no agent has anything to refuse. The forged
 * Service gets no backend, no route or identity appears for the forged nodes and entries, neither
 * the maps nor the traffic to the legitimate backends change. One more record sits under east's
 * own prefix in west's etcd: no agent reads it, so it must change nothing either. The records and
 * the Service are deleted afterwards.
 */
import type { Etcd3 } from 'etcd3';
import { labApi } from '../../lab/cluster/api.js';
import { createService } from '../../lab/workloads/deployment.js';
import { IDENTITY_CLUSTER_SHIFT, decodeClusterService, encodeIPCacheEntry, encodeNode, maskFromPrefixLength } from '../../lib/kvstore/codecs.js';
import { identityKey, ipcacheKey, nodeKey, serviceKey } from '../../lib/kvstore/keys.js';
import { STATE_KINDS, STATE_KIND_SPECS, type StateKind, cacheKeyOf } from '../../lib/kvstore/state-kinds.js';
import { formatCidr, nthAddress, nthSubnet, parseCidr } from '../../lib/net/cidr.js';
import { agentMetricsText, agentStatus, findFrontend, mapWrites, metricByLabel } from './agents.js';
import { answeredBy, requestCount } from './analysis.js';
import { agentStatusUrl, apiserverEtcdAdmin } from './daemons.js';
import { FAILOVER_RATE, steadyTraffic } from './failover.js';
import { meshRejections } from './peer-readers.js';
import { type ScenarioResult, resultOf, withRestore } from './result.js';
import { CONVERGE_TIMEOUT_MS, ECHO, type E2eEnv, LOCAL, REMOTE, SERVICE_PORT, restoreBaseline, serviceVip, workerNodes } from './suite.js';
import { waitFor } from './wait.js';

export const REJECTED_METRIC = 'clustermesh_agent_rejected_records_total';
const RECORD_EVENTS_METRIC = 'clustermesh_agent_remote_record_events_total';
const ONE_MIB = 1024 * 1024;
/** the global Service of east the forged backends are published for (it has no pods in east) */
const FORGED = { namespace: ECHO.namespace, name: 'forged' };

/** How an agent shows that it kept a record out. */
type Evidence =
  | { kind: 'counted' }
  | { kind: 'backend'; addr: string }
  | { kind: 'node'; node: string }
  | { kind: 'identity'; ip: string };

export interface HostileRecord {
  what: string;
  key: string;
  value: string;
  /** under a prefix east's agents read from this peer (so they must see and refuse it) */
  read: boolean;
  /** the reason each refusal of this record is counted under (a Service: one per backend) */
  reasons: string[];
  /**
   * the check that refuses it: the import validation (lib/kvstore/validate.ts) or address
   * ownership (lib/kvstore/ownership.ts), both the agent's in direct mode and the kvstoremesh's in
   * cached mode; null for a record nobody reads
   */
  refusedBy: 'validation' | 'ownership' | null;
  evidence: Evidence[];
}

interface Victim {
  name: string;
  id: number;
  podIP: string;
  nodeIP: string;
  nodePodCidr: string;
  clusterIP: string;
  serviceCidr: string;
}

interface Peer {
  name: string;
  id: number;
  /** the cluster's pod range, and one node's pod CIDR in it */
  podCidr: string;
  nodePodCidr: string;
}

const tcp = (port: number) => ({ tcp: { Protocol: 'TCP', Port: port } });

function serviceValue(cluster: string, name: string, clusterID: number, backends: Record<string, ReturnType<typeof tcp>>): string {
  return JSON.stringify({ cluster, namespace: ECHO.namespace, name, frontends: {}, backends, labels: {}, selector: { app: name }, includeExternal: true, shared: true, clusterID });
}

/** What the hostile peer writes into `peer`'s etcd, pretending things about `victim`. Pure. */
export function hostileRecords(peer: Peer, victim: Victim): HostileRecord[] {
  const counted: Evidence[] = [{ kind: 'counted' }];
  const malformed = (what: string, key: string, value: string, reason: string): HostileRecord => ({ what, key, value, read: true, reasons: [reason], refusedBy: 'validation', evidence: counted });
  const claim = (cluster: string, name: string, id: number) => serviceValue(cluster, name, id, { [victim.podIP]: tcp(ECHO.targetPort) });
  // A west node refused below (it claims east's node IP): a backend in its pod CIDR is nobody's.
  const spareCidr = (n: number) => formatCidr(nthSubnet(parseCidr(peer.podCidr), 24, n));
  const refusedNodeCidr = spareCidr(251);
  const forgedBackends: [string, string, number, string][] = [
    ['loopback (an admin port on every client)', '127.0.0.1', 22, 'loopback'],
    ['unspecified', '0.0.0.0', ECHO.targetPort, 'unspecified'],
    ['multicast', '224.0.0.1', ECHO.targetPort, 'multicast'],
    [`a pod of ${victim.name}`, victim.podIP, ECHO.targetPort, 'local-pod-cidr'],
    [`${victim.name}'s own ClusterIP`, victim.clusterIP, SERVICE_PORT, 'local-cluster-ip'],
    ['broadcast', '255.255.255.255', ECHO.targetPort, 'broadcast'],
    ['link-local (cloud metadata)', '169.254.169.254', 80, 'link-local'],
    ['IPv6 loopback', '::1', 22, 'loopback'],
    ['IPv6 unspecified', '::', ECHO.targetPort, 'unspecified'],
    ['IPv6 multicast', 'ff02::1', ECHO.targetPort, 'multicast'],
    ['IPv6 link-local', 'fe80::1', ECHO.targetPort, 'link-local'],
    ['IPv4-mapped loopback', '::ffff:127.0.0.1', 22, 'ipv4-mapped'],
    [`a node IP of ${victim.name} (kubelet port)`, victim.nodeIP, 10250, 'local-node-ip'],
    [`an unused address of ${victim.name}'s service CIDR`, nthAddress(parseCidr(victim.serviceCidr), 99), SERVICE_PORT, 'local-service-cidr'],
    [`in ${peer.name}'s pod range, on no node of ${peer.name}`, nthAddress(parseCidr(spareCidr(250)), 9), ECHO.targetPort, 'not-owned'],
    [`in the pod CIDR of a refused ${peer.name} node`, nthAddress(parseCidr(refusedNodeCidr), 7), ECHO.targetPort, 'not-owned'],
  ];
  const node = (name: string, ip: string, podCidr: string) => {
    const [address, length] = podCidr.split('/');
    return encodeNode({ Name: name, Cluster: peer.name, ClusterID: peer.id, IPAddresses: [{ Type: 'InternalIP', IP: ip }], IPv4AllocCIDR: { IP: address, Mask: maskFromPrefixLength(Number(length), 4) }, IPv6AllocCIDR: null });
  };
  const forgedNodes: [string, string, string, string][] = [
    [`pod CIDR = a ${victim.name} node's`, '10.99.0.250', victim.nodePodCidr, 'local-pod-cidr'],
    ['loopback pod CIDR', '10.99.0.251', '127.0.0.0/24', 'loopback'],
    [`InternalIP = a ${victim.name} node's`, victim.nodeIP, refusedNodeCidr, 'local-node-ip'],
    ['the whole IPv4 space as pod CIDR', '10.99.0.252', '0.0.0.0/0', 'too-broad'],
    [`pod CIDR over ${victim.name}'s ClusterIPs`, '10.99.0.253', `${victim.serviceCidr.split('/')[0]}/24`, 'local-cluster-ip'],
  ];
  const identity = (peer.id << IDENTITY_CLUSTER_SHIFT) | 4243;
  const entry = (ip: string, hostIP: string) =>
    encodeIPCacheEntry({ IP: ip, Mask: null, HostIP: hostIP, ID: identity, K8sNamespace: ECHO.namespace, K8sPodName: 'forged', NamedPorts: null });
  const ownPodIP = nthAddress(parseCidr(peer.nodePodCidr), 200);
  const forgedEntries: [string, string, string, string][] = [
    [`a pod of ${victim.name}`, victim.podIP, '10.99.0.250', 'local-pod-cidr'],
    ['loopback', '127.0.0.1', '10.99.0.250', 'loopback'],
    [`own pod, HostIP = a ${victim.name} node`, ownPodIP, victim.nodeIP, 'local-node-ip'],
  ];
  return [
    malformed(`service claiming to be ${victim.name}`, serviceKey(peer.name, ECHO.namespace, 'hostile-claim'), claim(victim.name, 'hostile-claim', victim.id), 'key-mismatch'),
    malformed('service with a mismatched cluster ID', serviceKey(peer.name, ECHO.namespace, 'hostile-id'), claim(peer.name, 'hostile-id', 200), 'cluster-id'),
    malformed('garbage', serviceKey(peer.name, ECHO.namespace, 'hostile-garbage'), '\u0000{"cluster": garbage ]]', 'malformed'),
    malformed('1 MiB value', serviceKey(peer.name, ECHO.namespace, 'hostile-huge'), 'x'.repeat(ONE_MIB), 'too-large'),
    malformed(
      `node claiming to be ${victim.name}`,
      nodeKey(peer.name, `${victim.name}-impostor`),
      JSON.stringify({ Name: `${victim.name}-impostor`, Cluster: victim.name, ClusterID: victim.id, IPAddresses: [{ Type: 'InternalIP', IP: victim.podIP }] }),
      'key-mismatch',
    ),
    malformed(
      `identity in ${victim.name}'s ID range`,
      identityKey((victim.id << IDENTITY_CLUSTER_SHIFT) | 4242),
      `k8s:app=${ECHO.name};k8s:io.cilium.k8s.policy.cluster=${victim.name};k8s:io.kubernetes.pod.namespace=${ECHO.namespace};`,
      'foreign-cluster',
    ),
    {
      what: `${FORGED.namespace}/${FORGED.name} backends: ${forgedBackends.map(([what, addr, port]) => `${addr}:${port} (${what})`).join(', ')}`,
      key: serviceKey(peer.name, FORGED.namespace, FORGED.name),
      value: serviceValue(peer.name, FORGED.name, peer.id, Object.fromEntries(forgedBackends.map(([, addr, port]) => [addr, tcp(port)]))),
      read: true,
      reasons: forgedBackends.map(([, , , reason]) => reason),
      refusedBy: 'ownership',
      evidence: forgedBackends.map(([, addr]) => ({ kind: 'backend', addr })),
    },
    ...forgedNodes.map(([what, ip, podCidr, reason], i): HostileRecord => ({
      what: `node ${peer.name}/forged-${i}: ${what} (InternalIP ${ip}, pod CIDR ${podCidr})`,
      key: nodeKey(peer.name, `forged-${i}`),
      value: node(`forged-${i}`, ip, podCidr),
      read: true,
      reasons: [reason],
      refusedBy: 'ownership',
      evidence: [{ kind: 'node', node: `forged-${i}` }],
    })),
    ...forgedEntries.map(([what, ip, hostIP, reason]): HostileRecord => ({
      what: `ipcache ${ip}: ${what} (HostIP ${hostIP})`,
      key: ipcacheKey(ip),
      value: entry(ip, hostIP),
      read: true,
      reasons: [reason],
      refusedBy: 'ownership',
      evidence: [{ kind: 'identity', ip }],
    })),
    {
      what: `${victim.name}'s own service, rewritten in ${peer.name}'s etcd`,
      key: serviceKey(victim.name, ECHO.namespace, ECHO.name),
      value: claim(victim.name, ECHO.name, victim.id),
      read: false,
      reasons: [],
      refusedBy: null,
      evidence: [],
    },
  ];
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

const delta = (after: Record<string, number>, before: Record<string, number>): Record<string, number> =>
  Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => v !== 0));

const tally = (reasons: string[]): Record<string, number> => reasons.reduce<Record<string, number>>((t, r) => ({ ...t, [r]: (t[r] ?? 0) + 1 }), {});

/** The kind whose prefix in the peer's etcd holds `key`. */
function kindOf(key: string): StateKind {
  const kind = STATE_KINDS.find((k) => key.startsWith(STATE_KIND_SPECS[k].prefix(REMOTE)));
  if (!kind) throw new Error(`${key} is under no prefix read from ${REMOTE}`);
  return kind;
}

/**
 * Whether the agent on `node` kept what `evidence` names out; one line saying what it did. In
 * cached mode (`cache`: east's etcd) it must be missing from the cache as well: the record, or,
 * for a backend, the address from the cached Service.
 */
async function keptOut(env: E2eEnv, node: string, forgedVip: string, record: HostileRecord, evidence: Evidence, cache: Etcd3 | null): Promise<[boolean, string]> {
  const [kept, did] = await agentKeptOut(env, node, forgedVip, evidence);
  if (!cache) return [kept, did];
  const cached = await cache.get(cacheKeyOf(kindOf(record.key), REMOTE, record.key)).buffer();
  if (evidence.kind !== 'backend') return cached === null ? [kept, `not in the cache; ${did}`] : [false, 'CACHED by the kvstoremesh'];
  const service = cached && decodeClusterService(record.key, cached);
  const inCache = service?.ok === true && evidence.addr in service.value.backends;
  return inCache ? [false, 'CACHED as a backend by the kvstoremesh'] : [kept, `not in the cached Service; ${did}`];
}

/** Whether the agent on `node` kept what `evidence` names out; one line saying what it did. */
async function agentKeptOut(env: E2eEnv, node: string, forgedVip: string, evidence: Evidence): Promise<[boolean, string]> {
  switch (evidence.kind) {
    case 'counted':
      return [true, 'rejected at validation'];
    case 'backend': {
      const frontend = findFrontend(await agentStatus(env.running, node), forgedVip, SERVICE_PORT);
      const inMaps = frontend?.backends.some((b) => b.addr === evidence.addr) ?? false;
      return [frontend !== undefined && !inMaps, inMaps ? 'PROGRAMMED as a backend' : 'backend dropped: not in the maps, not probed'];
    }
    case 'node': {
      const status = (await (await fetch(`${agentStatusUrl(env.running, node)}/status`)).json()) as {
        routes: { installed: { node?: string }[]; problems: { node: string }[] };
      };
      const seen = [...status.routes.installed, ...status.routes.problems].some((r) => r.node === evidence.node);
      return [!seen, seen ? 'node in the route plan' : 'node refused: owns nothing, no route'];
    }
    case 'identity': {
      const res = await fetch(`${agentStatusUrl(env.running, node)}/identity?ip=${evidence.ip}`);
      return [res.status === 404, res.status === 404 ? 'entry refused: no identity for it' : `identity answered ${res.status}`];
    }
  }
}

/** Services of west an agent has taken in (read from the cache in cached mode). */
async function remoteServiceUpserts(env: E2eEnv, node: string): Promise<number> {
  return metricByLabel(await agentMetricsText(env.running, node), RECORD_EVENTS_METRIC, 'kind', { cluster: REMOTE, op: 'upsert' }).services ?? 0;
}

export async function hostilePeer(env: E2eEnv, rate = FAILOVER_RATE): Promise<ScenarioResult> {
  const etcd = await apiserverEtcdAdmin(env.running, REMOTE);
  const victimPlan = env.running.plan.clusters.find((c) => c.name === LOCAL)!;
  const peerPlan = env.running.plan.clusters.find((c) => c.name === REMOTE)!;
  const agents = workerNodes(env, LOCAL);
  const victimNode = env.running.plan.nodes.find((n) => n.name === agents[0])!;
  const peerNode = env.running.plan.nodes.find((n) => n.cluster === REMOTE && n.role === 'worker')!;
  const records = hostileRecords(
    { name: peerPlan.name, id: peerPlan.id, podCidr: peerPlan.podCIDRv4, nodePodCidr: peerNode.podCIDRv4 },
    {
      name: victimPlan.name,
      id: victimPlan.id,
      podIP: env.backends[LOCAL][0].ipv4,
      nodeIP: victimNode.ipv4,
      nodePodCidr: victimNode.podCIDRv4,
      clusterIP: env.vips[LOCAL],
      serviceCidr: victimPlan.serviceCIDRv4,
    },
  );
  // In cached mode the kvstoremesh refuses every record and address; the agents never see them.
  const byMesh = (r: HostileRecord) => env.mode === 'cached' && r.refusedBy !== null;
  const expectedAgent = tally(records.filter((r) => !byMesh(r)).flatMap((r) => r.reasons));
  const expectedMesh = tally(records.filter(byMesh).flatMap((r) => r.reasons));
  const sum = (t: Record<string, number>) => Object.values(t).reduce((a, b) => a + b, 0);
  const expectedCount = sum(expectedAgent);
  const expectedMeshCount = sum(expectedMesh);
  const forgedVip = serviceVip(env.running, LOCAL, 21);
  const forgedService = { apiVersion: 'v1', kind: 'Service', metadata: { namespace: FORGED.namespace, name: FORGED.name } };
  const cache = env.mode === 'cached' ? await apiserverEtcdAdmin(env.running, LOCAL) : null;
  return withRestore(async () => {
    // A global Service of east with no pods in east: whatever west publishes for it would be used.
    await createService(env.running, LOCAL, {
      ...FORGED,
      clusterIP: forgedVip,
      port: SERVICE_PORT,
      targetPort: ECHO.targetPort,
      annotations: { 'clustermesh.io/global': 'true', 'clustermesh.io/affinity': 'none' },
    });
    for (const node of agents)
      await waitFor(`${node} to program ${FORGED.name}`, () => agentStatus(env.running, node), (s) => findFrontend(s, forgedVip, SERVICE_PORT) !== undefined, CONVERGE_TIMEOUT_MS);
    const traffic = await steadyTraffic(env, rate);
    try {
      const before = await Promise.all(agents.map((n) => counters(env, n)));
      const reasonsBefore = await Promise.all(agents.map((n) => rejectionReasons(env, n)));
      const meshBefore = await meshRejections(env);
      const upsertsBefore = await Promise.all(agents.map((n) => remoteServiceUpserts(env, n)));
      const writtenAt = Date.now();
      for (const r of records) await etcd.put(r.key).value(r.value).exec();
      const meshAfter = await waitFor(
        `${LOCAL}'s kvstoremesh to refuse ${expectedMeshCount} hostile records`,
        () => meshRejections(env),
        (m) => sum(delta(m, meshBefore)) >= expectedMeshCount,
        CONVERGE_TIMEOUT_MS,
      );
      // Cached: each agent reads the forged Service as the kvstoremesh admitted it (no backends), so
      // it has read the cache past the decision that refused the rest.
      if (env.mode === 'cached')
        await Promise.all(
          agents.map((n, i) => waitFor(`${n} to read ${FORGED.name} from the cache`, () => remoteServiceUpserts(env, n), (u) => u > upsertsBefore[i], CONVERGE_TIMEOUT_MS)),
        );
      const after = await Promise.all(
        agents.map((n, i) =>
          waitFor(`${n} to refuse all ${expectedCount} hostile records and backends`, () => counters(env, n), (c) => c.rejected - before[i].rejected >= expectedCount, CONVERGE_TIMEOUT_MS),
        ),
      );
      const countedAt = Date.now();
      await traffic.until('a second of traffic after the rejections', (rs) => requestCount(rs, countedAt) >= rate, CONVERGE_TIMEOUT_MS);
      const settled = await Promise.all(agents.map((n) => counters(env, n)));
      const reasons = await Promise.all(agents.map(async (n, i) => delta(await rejectionReasons(env, n), reasonsBefore[i])));
      const meshReasons = delta(await meshRejections(env), meshBefore);
      const rows: string[] = [];
      const unexpected: string[] = [];
      for (const record of records.filter((r) => r.read)) {
        const evidence = record.evidence.length > 0 ? record.evidence : ([{ kind: 'counted' }] as Evidence[]);
        for (const [i, item] of evidence.entries()) {
          const outcomes = await Promise.all(agents.map((n) => keptOut(env, n, forgedVip, record, item, cache)));
          for (const [node, [ok, did]] of outcomes.map((o, j) => [agents[j], o] as const)) if (!ok) unexpected.push(`${node}: ${record.key}: ${did}`);
          const label = item.kind === 'backend' ? `${record.key} backend ${item.addr}` : `${record.key}: ${record.what}`;
          rows.push(`| ${label} | ${outcomes[0][1]} | ${record.reasons[i] ?? record.reasons[0]} |`);
        }
      }
      const differs = (a: Record<string, number>, b: Record<string, number>) => JSON.stringify(sortKeys(a)) !== JSON.stringify(sortKeys(b));
      for (const [i, r] of reasons.entries()) if (differs(r, expectedAgent)) unexpected.push(`${agents[i]} counted ${JSON.stringify(r)}, expected ${JSON.stringify(expectedAgent)}`);
      if (differs(meshReasons, expectedMesh)) unexpected.push(`${LOCAL}'s kvstoremesh counted ${JSON.stringify(meshReasons)}, expected ${JSON.stringify(expectedMesh)}`);
      const all = await traffic.stop();
      const refusers = env.mode === 'cached' ? `${LOCAL}'s kvstoremesh and every ${LOCAL} agent` : `every ${LOCAL} agent`;
      return resultOf('8', 'hostile peer records', all, { ms: countedAt - writtenAt, meaning: `records written -> ${refusers} refused them all` }, {
        rate,
        written: records.length,
        expectedRejections: expectedCount + expectedMeshCount,
        expectedPerAgent: expectedCount,
        expectedByMesh: expectedMeshCount,
        rejectedPerAgent: Object.fromEntries(agents.map((n, i) => [n, after[i].rejected - before[i].rejected])),
        rejectedByMesh: sum(delta(meshAfter, meshBefore)),
        [`rejectedByReason(${agents[0]})`]: reasons[0],
        rejectedByReasonMesh: meshReasons,
        mapWritesPerAgent: Object.fromEntries(agents.map((n, i) => [n, settled[i].writes - before[i].writes])),
        backendsUnchanged: agents.every((_, i) => settled[i].frontend === before[i].frontend),
        answeredBy: answeredBy(all),
        unexpected: unexpected.join('; '),
        forgedRecords: ['| record | what the agent did | reason counted |', '|---|---|---|', ...rows].join('\n'),
      });
    } finally {
      await traffic.stop();
    }
  }, async () => {
    try {
      for (const r of records) await etcd.delete().key(r.key).exec();
    } finally {
      etcd.close();
      cache?.close();
    }
    await labApi(env.running.kubeconfig, LOCAL).remove(forgedService);
    await restoreBaseline(env);
  });
}

const sortKeys = (r: Record<string, number>): [string, number][] => Object.entries(r).sort(([a], [b]) => (a < b ? -1 : 1));
