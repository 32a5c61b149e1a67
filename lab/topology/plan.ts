/**
 * The lab's address plan: a pure function from a lab spec to every namespace, interface, address,
 * route and cgroup the lab will make. apply.ts only executes a plan; nothing here touches the host.
 */
import { createHash } from 'node:crypto';
import { UserError } from '../../lib/errors.js';
import {
  type Cidr,
  cidrContainsIp,
  cidrSize,
  cidrsOverlap,
  formatCidr,
  nthAddress,
  nthSubnet,
  parseAddressOrCidr,
  parseCidr,
} from '../../lib/net/cidr.js';
import type { RouteSpec } from '../../lib/routes.js';

export interface ClusterSpec {
  name: string;
  id: number;
  workers: number;
  podCIDRv4: string;
  podCIDRv6: string;
  serviceCIDRv4: string;
  serviceCIDRv6: string;
}

export interface LabSpec {
  /** prefixes every namespace, host interface and cgroup of the lab, so leftovers can be found */
  prefix: string;
  bridgeSubnetV4: string;
  bridgeSubnetV6: string;
  clusters: ClusterSpec[];
}

/** ARCHITECTURE.md's lab address plan. */
export const DEFAULT_LAB_SPEC: LabSpec = {
  prefix: 'cmlab',
  bridgeSubnetV4: '10.99.0.0/24',
  bridgeSubnetV6: 'fd99:0:0:99::/64',
  clusters: [
    {
      name: 'east',
      id: 1,
      workers: 2,
      podCIDRv4: '10.101.0.0/16',
      podCIDRv6: 'fd99:101::/48',
      serviceCIDRv4: '10.111.0.0/16',
      serviceCIDRv6: 'fd99:111::/108',
    },
    {
      name: 'west',
      id: 2,
      workers: 2,
      podCIDRv4: '10.102.0.0/16',
      podCIDRv6: 'fd99:102::/48',
      serviceCIDRv4: '10.112.0.0/16',
      serviceCIDRv6: 'fd99:112::/108',
    },
  ],
};

/** Never used, routed or shadowed by the lab: this machine's uplink and resolver (DESIGN §7). */
export const FORBIDDEN_RANGES: readonly string[] = ['192.0.2.0/24', 'fd00::/64', '10.255.255.53/32'];

/** Per node, pods get a /24 and a /64 out of their cluster's pod CIDRs (like kind's kube-controller-manager). */
export const NODE_POD_PREFIX = { v4: 24, v6: 64 } as const;

/** Pods reach their node through this link-local address on the node side of their veth. */
export const POD_GATEWAY_V6 = 'fe80::1';

/** The interface name every node and pod sees for its uplink. */
export const NODE_UPLINK = 'eth0';

export interface VethEnd {
  netns: string;
  name: string;
}

export interface NodePlan {
  /** the Kubernetes node name, kind style: `east-control-plane`, `east-worker`, `east-worker2` */
  name: string;
  cluster: string;
  clusterId: number;
  role: 'control-plane' | 'worker';
  netns: string;
  /** its address on the bridge (the "kind network") */
  ipv4: string;
  ipv6: string;
  /** the slice of the cluster's pod CIDRs this node's pods live in */
  podCIDRv4: string;
  podCIDRv6: string;
  /** pods' IPv4 default gateway: the first address of podCIDRv4, held by the node */
  podGatewayV4: string;
  /** routes to the pod CIDRs of the other nodes of the same cluster (the lab plays the CNI) */
  routes: RouteSpec[];
  /** cgroup v2 directory relative to the cgroup2 mount: the node's pods run in it, the socket-LB attaches to it */
  cgroup: string;
}

export interface ClusterPlan extends ClusterSpec {
  nodes: string[];
}

export interface LabPlan {
  prefix: string;
  bridge: { netns: string; device: string; subnetV4: string; subnetV6: string };
  /** the root namespace's one door into the lab */
  host: { device: string; bridgePort: string; ipv4: string; ipv6: string };
  clusters: ClusterPlan[];
  nodes: NodePlan[];
  /** node uplinks, each a veth pair onto the bridge (second end = the bridge port) */
  veths: Array<[VethEnd, VethEnd]>;
  /** root-namespace blackholes for every pod and service range, so no lab address leaves by the default route */
  hostBlackholes: RouteSpec[];
  /** parent cgroup of all node cgroups, relative to the cgroup2 mount */
  cgroupRoot: string;
}

export interface PodPlan {
  name: string;
  node: string;
  netns: string;
  /** node-side veth name; the pod side is NODE_UPLINK */
  hostDevice: string;
  ipv4: string;
  ipv6: string;
  gatewayV4: string;
  gatewayV6: string;
}

/** ≤10 characters so `<prefix>-host` fits an interface name; no dash so prefixes never nest. */
export const LAB_PREFIX_PATTERN = /^[a-z][a-z0-9]{0,9}$/;
const CLUSTER_NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const POD_NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const MAX_WORKERS = 32;

export interface LabelledRange {
  label: string;
  cidr: Cidr;
}

/**
 * The plan for a lab. `hostRoutes` are the destinations of the host's routes and addresses (e.g.
 * from `ip route show table all`); any lab range overlapping one is refused, as is any forbidden range.
 */
export function planLab(spec: LabSpec = DEFAULT_LAB_SPEC, hostRoutes: readonly string[] = []): LabPlan {
  const ranges = validateSpec(spec);
  const hostProblem = findHostOverlap(ranges, hostRoutes);
  if (hostProblem) throw new UserError(hostProblem);
  return buildPlan(spec);
}

/** Parses and checks a spec; returns the lab's ranges (labelled) or throws one line listing every problem. */
function validateSpec(spec: LabSpec): LabelledRange[] {
  const problems: string[] = [];
  if (!LAB_PREFIX_PATTERN.test(spec.prefix)) {
    problems.push(
      `lab prefix "${spec.prefix}" must be 1-10 of a-z 0-9 starting with a letter (it names host interfaces)`,
    );
  }
  if (spec.clusters.length === 0) problems.push('the lab needs at least one cluster');
  problems.push(...clusterIdentityProblems(spec.clusters));
  const ranges = collectRanges(spec, problems);
  problems.push(...rangeOverlapProblems(ranges), ...forbiddenRangeProblems(ranges));
  problems.push(...capacityProblems(spec, ranges));
  if (problems.length > 0) throw new UserError(`invalid lab spec: ${problems.join('; ')}`);
  return ranges;
}

function clusterIdentityProblems(clusters: ClusterSpec[]): string[] {
  const problems: string[] = [];
  const seenNames = new Set<string>();
  const seenIds = new Set<number>();
  for (const cluster of clusters) {
    if (!CLUSTER_NAME_PATTERN.test(cluster.name) || cluster.name.length > 32) {
      problems.push(
        `cluster name "${cluster.name}" must be ≤32 of a-z 0-9 - (not starting or ending with -)`,
      );
    }
    if (!Number.isInteger(cluster.id) || cluster.id < 1 || cluster.id > 255) {
      problems.push(`cluster "${cluster.name}" has ID ${cluster.id}: use 1..255`);
    }
    if (!Number.isInteger(cluster.workers) || cluster.workers < 1 || cluster.workers > MAX_WORKERS) {
      problems.push(`cluster "${cluster.name}" has ${cluster.workers} workers: use 1..${MAX_WORKERS}`);
    }
    if (seenNames.has(cluster.name)) problems.push(`two clusters are named "${cluster.name}"`);
    if (seenIds.has(cluster.id)) problems.push(`two clusters have ID ${cluster.id}`);
    seenNames.add(cluster.name);
    seenIds.add(cluster.id);
  }
  return problems;
}

function collectRanges(spec: LabSpec, problems: string[]): LabelledRange[] {
  const entries: Array<[string, string, 4 | 6]> = [
    ['bridge subnet', spec.bridgeSubnetV4, 4],
    ['bridge subnet', spec.bridgeSubnetV6, 6],
  ];
  for (const c of spec.clusters) {
    entries.push(
      [`cluster ${c.name} pod CIDR`, c.podCIDRv4, 4],
      [`cluster ${c.name} pod CIDR`, c.podCIDRv6, 6],
      [`cluster ${c.name} service CIDR`, c.serviceCIDRv4, 4],
      [`cluster ${c.name} service CIDR`, c.serviceCIDRv6, 6],
    );
  }
  const ranges: LabelledRange[] = [];
  for (const [label, text, family] of entries) {
    try {
      const cidr = parseCidr(text);
      if (cidr.family !== family) problems.push(`${label} ${text} must be IPv${family}`);
      else ranges.push({ label, cidr });
    } catch (err) {
      problems.push(`${label}: ${(err as Error).message}`);
    }
  }
  return ranges;
}

function rangeOverlapProblems(ranges: LabelledRange[]): string[] {
  const problems: string[] = [];
  ranges.forEach((a, i) =>
    ranges.slice(i + 1).forEach((b) => {
      if (cidrsOverlap(a.cidr, b.cidr)) {
        problems.push(`${a.label} ${formatCidr(a.cidr)} overlaps ${b.label} ${formatCidr(b.cidr)}`);
      }
    }),
  );
  return problems;
}

function forbiddenRangeProblems(ranges: LabelledRange[]): string[] {
  const forbidden = FORBIDDEN_RANGES.map(parseCidr);
  return ranges.flatMap((range) =>
    forbidden
      .filter((bad) => cidrsOverlap(range.cidr, bad))
      .map(
        (bad) =>
          `${range.label} ${formatCidr(range.cidr)} overlaps ${formatCidr(bad)}, which the lab must never use or route (the host uplink)`,
      ),
  );
}

function capacityProblems(spec: LabSpec, ranges: LabelledRange[]): string[] {
  const problems: string[] = [];
  const nodeCount = spec.clusters.reduce((sum, c) => sum + 1 + Math.max(0, c.workers), 0);
  for (const range of ranges.filter((r) => r.label === 'bridge subnet')) {
    // network address, host port, nodes, and (IPv4) broadcast
    if (cidrSize(range.cidr) < BigInt(nodeCount + 3)) {
      problems.push(
        `bridge subnet ${formatCidr(range.cidr)} is too small for ${nodeCount} nodes and the host`,
      );
    }
  }
  for (const cluster of spec.clusters) {
    const nodes = 1 + Math.max(0, cluster.workers);
    for (const range of ranges.filter((r) => r.label === `cluster ${cluster.name} pod CIDR`)) {
      const perNode = range.cidr.family === 4 ? NODE_POD_PREFIX.v4 : NODE_POD_PREFIX.v6;
      const room = range.cidr.prefix > perNode ? 0 : 2 ** Math.min(30, perNode - range.cidr.prefix);
      if (room < nodes) {
        problems.push(
          `${range.label} ${formatCidr(range.cidr)} holds ${room} node /${perNode}s, ${nodes} nodes need one each`,
        );
      }
    }
  }
  return problems;
}

/** The first lab range overlapping a host route or address, as a one-line message; undefined if none. */
export function findHostOverlap(ranges: LabelledRange[], hostRoutes: readonly string[]): string | undefined {
  for (const route of hostRoutes) {
    const hostCidr = parseAddressOrCidr(route);
    if (hostCidr.prefix === 0) continue; // the default route covers everything; the lab shadows it on purpose
    const clash = ranges.find((range) => cidrsOverlap(range.cidr, hostCidr));
    if (clash) {
      return `${clash.label} ${formatCidr(clash.cidr)} overlaps the host's ${route}: pick lab ranges the host does not use`;
    }
  }
  return undefined;
}

/** The first range of `ranges` that overlaps one of another lab's, said in one line; undefined if none. */
function findLabOverlap(ranges: LabelledRange[], other: { prefix: string; ranges: LabelledRange[] }): string | undefined {
  for (const range of ranges) {
    const clash = other.ranges.find((theirs) => cidrsOverlap(range.cidr, theirs.cidr));
    if (clash) return `${range.label} ${formatCidr(range.cidr)} overlaps lab "${other.prefix}"'s ${clash.label} ${formatCidr(clash.cidr)}`;
  }
  return undefined;
}

/** Another lab on this host, as `up` sees it: its ranges, and whether it is in use. */
export interface OtherLab {
  prefix: string;
  ranges: LabelledRange[];
  /** in use, as its kind of lab tells (lab/topology/apply.ts labsInTheWayOf); otherwise crashed */
  live: boolean;
}

/**
 * The labs whose ranges a new lab would share. Crashed ones (not in use: a run killed before its
 * teardown) are leftovers to remove; a live one is a lab in use, and the new one must not
 * start. Labs on other ranges are none of this lab's business.
 */
export function labsInTheWay(ranges: LabelledRange[], others: OtherLab[]): { crashed: string[]; live: string[] } {
  const inTheWay = others.flatMap((other) => {
    const overlap = findLabOverlap(ranges, other);
    return overlap ? [{ ...other, overlap }] : [];
  });
  return {
    crashed: inTheWay.filter((o) => !o.live).map((o) => o.prefix),
    live: inTheWay.filter((o) => o.live).map((o) => `${o.overlap}, and that lab runs: bring it down first (clustermesh lab down --prefix ${o.prefix})`),
  };
}

/** The plan's ranges, labelled (for the host-overlap check at `up`). */
export function planRanges(plan: LabPlan): LabelledRange[] {
  return validateSpec(specOf(plan));
}

function specOf(plan: LabPlan): LabSpec {
  return {
    prefix: plan.prefix,
    bridgeSubnetV4: plan.bridge.subnetV4,
    bridgeSubnetV6: plan.bridge.subnetV6,
    clusters: plan.clusters.map(({ nodes: _nodes, ...spec }) => spec),
  };
}

/** Names that `down` and `status` derive from the prefix alone (they may have no plan). */
export function labCgroupRoot(prefix: string): string {
  return `clustermesh-lab-${prefix}`;
}

export function hostDeviceName(prefix: string): string {
  return `${prefix}-host`;
}

function buildPlan(spec: LabSpec): LabPlan {
  const bridge4 = parseCidr(spec.bridgeSubnetV4);
  const bridge6 = parseCidr(spec.bridgeSubnetV6);
  const bridgeNetns = `${spec.prefix}-bridge`;
  const cgroupRoot = labCgroupRoot(spec.prefix);
  let nextBridgeOffset = 2; // .0 network, .1 the host
  const nodes: NodePlan[] = [];
  const clusters: ClusterPlan[] = [];
  for (const cluster of spec.clusters) {
    const clusterNodes = nodeNamesOf(cluster).map((name, index) => {
      const offset = nextBridgeOffset++;
      return planNode(spec, cluster, name, index, {
        ipv4: nthAddress(bridge4, offset),
        ipv6: nthAddress(bridge6, offset),
        cgroupRoot,
      });
    });
    addIntraClusterRoutes(clusterNodes);
    nodes.push(...clusterNodes);
    clusters.push({ ...cluster, nodes: clusterNodes.map((n) => n.name) });
  }
  const host = {
    device: hostDeviceName(spec.prefix),
    bridgePort: 'host',
    ipv4: nthAddress(bridge4, 1),
    ipv6: nthAddress(bridge6, 1),
  };
  return {
    prefix: spec.prefix,
    bridge: {
      netns: bridgeNetns,
      device: 'br0',
      subnetV4: formatCidr(bridge4),
      subnetV6: formatCidr(bridge6),
    },
    host,
    clusters,
    nodes,
    veths: nodes.map((node): [VethEnd, VethEnd] => [
      { netns: node.netns, name: NODE_UPLINK },
      { netns: bridgeNetns, name: bridgePortName(node) },
    ]),
    hostBlackholes: spec.clusters.flatMap((c) =>
      [c.podCIDRv4, c.podCIDRv6, c.serviceCIDRv4, c.serviceCIDRv6].map((range): RouteSpec => ({
        destination: formatCidr(parseCidr(range)),
        type: 'blackhole',
      })),
    ),
    cgroupRoot,
  };
}

/** kind's node names: `<cluster>-control-plane`, `<cluster>-worker`, `<cluster>-worker2`, … */
function nodeNamesOf(cluster: ClusterSpec): string[] {
  const workers = Array.from(
    { length: cluster.workers },
    (_, i) => `${cluster.name}-worker${i === 0 ? '' : i + 1}`,
  );
  return [`${cluster.name}-control-plane`, ...workers];
}

function planNode(
  spec: LabSpec,
  cluster: ClusterSpec,
  name: string,
  index: number,
  context: { ipv4: string; ipv6: string; cgroupRoot: string },
): NodePlan {
  const podCIDRv4 = nthSubnet(parseCidr(cluster.podCIDRv4), NODE_POD_PREFIX.v4, index);
  const podCIDRv6 = nthSubnet(parseCidr(cluster.podCIDRv6), NODE_POD_PREFIX.v6, index);
  const role = index === 0 ? 'control-plane' : 'worker';
  return {
    name,
    cluster: cluster.name,
    clusterId: cluster.id,
    role,
    netns: `${spec.prefix}-${name}`,
    ipv4: context.ipv4,
    ipv6: context.ipv6,
    podCIDRv4: formatCidr(podCIDRv4),
    podCIDRv6: formatCidr(podCIDRv6),
    podGatewayV4: nthAddress(podCIDRv4, 1),
    routes: [],
    cgroup: `${context.cgroupRoot}/${name}`,
  };
}

function addIntraClusterRoutes(nodes: NodePlan[]): void {
  for (const node of nodes) {
    node.routes = nodes
      .filter((peer) => peer !== node)
      .flatMap((peer) => [
        { destination: peer.podCIDRv4, via: peer.ipv4, device: NODE_UPLINK },
        { destination: peer.podCIDRv6, via: peer.ipv6, device: NODE_UPLINK },
      ]);
  }
}

/** Bridge-side port of a node: short and unique in the bridge namespace (`c1-cp`, `c1-w2`). */
function bridgePortName(node: NodePlan): string {
  const index = node.name.match(/worker(\d*)$/);
  const role = index ? `w${index[1] || '1'}` : 'cp';
  return `c${node.clusterId}-${role}`;
}

export function findNode(plan: LabPlan, name: string): NodePlan {
  const node = plan.nodes.find((n) => n.name === name);
  if (!node) {
    throw new UserError(
      `lab ${plan.prefix} has no node "${name}": nodes are ${plan.nodes.map((n) => n.name).join(', ')}`,
    );
  }
  return node;
}

/** The n-th pod address pair of a node (n ≥ 1; the network and gateway addresses are skipped). */
export function podAddresses(node: NodePlan, n: number): { ipv4: string; ipv6: string } {
  if (!Number.isInteger(n) || n < 1) throw new UserError(`pod address number ${n} must be an integer ≥ 1`);
  return {
    ipv4: nthAddress(parseCidr(node.podCIDRv4), n + 1),
    ipv6: nthAddress(parseCidr(node.podCIDRv6), n + 1),
  };
}

/** A pod on a node: its namespace, veth and addresses (checked to be inside the node's pod CIDRs). */
export function planPod(
  plan: LabPlan,
  nodeName: string,
  podName: string,
  ipv4: string,
  ipv6: string,
): PodPlan {
  const node = findNode(plan, nodeName);
  const identity = podIdentity(node, podName);
  const reserved = [
    nthAddress(parseCidr(node.podCIDRv4), 0),
    node.podGatewayV4,
    nthAddress(parseCidr(node.podCIDRv6), 0),
  ];
  for (const [ip, range] of [
    [ipv4, node.podCIDRv4],
    [ipv6, node.podCIDRv6],
  ]) {
    if (!cidrContainsIp(parseCidr(range), ip) || reserved.includes(ip)) {
      throw new UserError(
        `pod ${podName} address ${ip} must be a free address inside ${node.name}'s pod CIDR ${range}`,
      );
    }
  }
  return {
    name: podName,
    node: node.name,
    ...identity,
    ipv4,
    ipv6,
    gatewayV4: node.podGatewayV4,
    gatewayV6: POD_GATEWAY_V6,
  };
}

/** A pod's namespace and node-side veth, which follow from its name alone. */
export function podIdentity(node: NodePlan, podName: string): { netns: string; hostDevice: string } {
  if (!POD_NAME_PATTERN.test(podName) || podName.length > 63) {
    throw new UserError(`pod name "${podName}" must be a DNS label (≤63 of a-z 0-9 -)`);
  }
  return {
    netns: `${node.netns}-${podName}`,
    // short enough for an interface name, stable for the pod's name, like Cilium's lxc<hash>
    hostDevice: `lxc${createHash('sha256').update(podName).digest('hex').slice(0, 11)}`,
  };
}
