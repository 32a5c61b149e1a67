/**
 * Executes a lab plan on the host: namespaces, bridge, veths, addresses, intra-cluster routes,
 * root-namespace blackholes and node cgroups; pods; a launcher into nodes and pods; teardown.
 * Every step is `ip -batch` per namespace so a whole lab is a handful of processes.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeCgroup } from '../../lib/cgroup.js';
import { UserError } from '../../lib/errors.js';
import { routeArgs } from '../../lib/routes.js';
import {
  cgroup2Mount,
  cgroupProcesses,
  hostBlackholes,
  ipBatch,
  isRunning,
  labNetns,
  labsWithState,
  linkExists,
  netnsPath,
  processesByNetns,
  run,
  readHostRoutes,
  readState,
  readStateBuilder,
  removeState,
  sysctlIn,
  waitFor,
  writeState,
} from './host.js';
import {
  type LabPlan,
  type NodePlan,
  type PodPlan,
  LAB_PREFIX_PATTERN,
  hostDeviceName,
  labCgroupRoot,
  NODE_UPLINK,
  findHostOverlap,
  findNode,
  labsInTheWay,
  planPod,
  planRanges,
  podIdentity,
} from './plan.js';

const PROCESS_EXIT_TIMEOUT_MS = 5000;

export interface SpawnInOptions {
  /** cgroup v2 directory to join first; default: the node's cgroup, false: stay where we are */
  cgroup?: string | false;
  env?: NodeJS.ProcessEnv;
  stdio?: SpawnOptions['stdio'];
}

/** Refuses, with one line, to run where the lab cannot work. Returns the cgroup2 mount. */
function assertHostCanRunLab(): string {
  if (process.getuid?.() !== 0)
    throw new UserError('the lab needs root (network namespaces, routes, cgroups): run it as root');
  const mount = cgroup2Mount();
  if (!mount)
    throw new UserError(
      'cgroup v2 is not mounted (no cgroup2 entry in /proc/mounts): mount it, e.g. mount -t cgroup2 none /sys/fs/cgroup',
    );
  return mount;
}

export class Lab {
  private constructor(
    readonly plan: LabPlan,
    private readonly cgroupMount: string,
  ) {}

  /**
   * Builds the lab after removing any leftovers of a crashed run with the same prefix, or of a
   * crashed lab on the same ranges; refuses while a lab on the same ranges runs.
   */
  static async up(plan: LabPlan): Promise<Lab> {
    const mount = assertHostCanRunLab();
    await down(plan.prefix);
    const { crashed, live } = labsInTheWayOf(plan, (other) => builderRuns(other) || hasProcesses(other, mount));
    if (live.length > 0) throw new UserError(live[0]);
    for (const prefix of crashed) await down(prefix);
    const overlap = findHostOverlap(planRanges(plan), await readHostRoutes());
    if (overlap) throw new UserError(overlap);
    writeState(plan); // first, so a crash from here on leaves something `down` can find
    const lab = new Lab(plan, mount);
    try {
      await lab.build();
    } catch (err) {
      await down(plan.prefix);
      throw err;
    }
    return lab;
  }

  /** The lab that `up` built, possibly in another process. */
  static open(prefix: string): Lab {
    const plan = readState(prefix);
    if (!plan) throw new UserError(`no lab "${prefix}" is up: run clustermesh lab up`);
    return new Lab(plan, assertHostCanRunLab());
  }

  private async build(): Promise<void> {
    const { plan } = this;
    await ipBatch(rootCommands(plan));
    writeFileSync(`/proc/sys/net/ipv4/conf/${plan.host.device}/forwarding`, '0'); // never route lab packets onwards
    await ipBatch(bridgeCommands(plan), plan.bridge.netns);
    await Promise.all(plan.nodes.map((node) => configureNode(plan, node)));
    for (const node of plan.nodes) {
      mkdirSync(this.nodeCgroupDir(node.name), { recursive: true });
    }
  }

  /** Absolute cgroup v2 directory of a node. */
  nodeCgroupDir(nodeName: string): string {
    return join(this.cgroupMount, findNode(this.plan, nodeName).cgroup);
  }

  /** The cgroup v2 mount (a hybrid host has it at /sys/fs/cgroup/unified). */
  get cgroupRoot(): string {
    return this.cgroupMount;
  }

  /** A pod namespace behind a veth on its node, with a /32 and a /128 and routes both ways. */
  async addPod(nodeName: string, podName: string, ipv4: string, ipv6: string): Promise<PodPlan> {
    const pod = planPod(this.plan, nodeName, podName, ipv4, ipv6);
    const node = findNode(this.plan, nodeName);
    if (existsSync(netnsPath(pod.netns))) throw new UserError(`pod ${podName} already exists on ${nodeName}`);
    try {
      await ipBatch([
        `netns add ${pod.netns}`,
        `link add ${pod.hostDevice} netns ${node.netns} type veth peer name ${NODE_UPLINK} netns ${pod.netns}`,
      ]);
      await Promise.all([ipBatch(nodeSideOfPod(pod), node.netns), ipBatch(podSideOfPod(pod), pod.netns)]);
    } catch (err) {
      await this.removePod(nodeName, podName); // no half-made pod
      throw err;
    }
    return pod;
  }

  async removePod(nodeName: string, podName: string): Promise<void> {
    const node = findNode(this.plan, nodeName);
    const { netns, hostDevice } = podIdentity(node, podName);
    await killNetnsProcesses([netns]);
    try {
      // explicitly, so a pod of the same name can come back at once (netns teardown is asynchronous)
      await ipBatch([`link del ${hostDevice}`], node.netns);
    } catch (err) {
      if (!/Cannot find device/.test((err as Error).message)) throw err;
    }
    await ipBatch(existsSync(netnsPath(netns)) ? [`netns del ${netns}`] : []);
  }

  /**
   * Starts a process in a node (`east-worker`) or pod (`east-worker/echo-1`): it joins the cgroup
   * first, then `nsenter --net` (which, unlike `ip netns exec`, keeps the cgroup mount visible).
   */
  spawnIn(target: string, command: string, args: string[], options: SpawnInOptions = {}): ChildProcess {
    const { netns, node } = this.resolveTarget(target);
    const cgroup = options.cgroup ?? this.nodeCgroupDir(node.name);
    const entry = ['nsenter', `--net=${netnsPath(netns)}`, '--', command, ...args];
    const spawnOptions = { env: options.env ?? process.env, stdio: options.stdio ?? 'pipe' };
    if (!cgroup) return spawn(entry[0], entry.slice(1), spawnOptions);
    // $0 is the cgroup.procs file; `exec` keeps the pid, so the child's pid is the final process
    const joinThenExec = 'echo $$ > "$0" && exec "$@"';
    return spawn('sh', ['-c', joinThenExec, join(cgroup, 'cgroup.procs'), ...entry], spawnOptions);
  }

  private resolveTarget(target: string): { netns: string; node: NodePlan } {
    const [nodeName, podName, extra] = target.split('/');
    const node = findNode(this.plan, nodeName);
    if (extra !== undefined) throw new UserError(`"${target}" is not a node or node/pod`);
    if (podName === undefined) return { netns: node.netns, node };
    const { netns } = podIdentity(node, podName);
    if (!existsSync(netnsPath(netns)))
      throw new UserError(`no pod "${podName}" on node ${node.name} in lab ${this.plan.prefix}`);
    return { netns, node };
  }

  async down(): Promise<void> {
    await down(this.plan.prefix);
  }
}

export function up(plan: LabPlan): Promise<Lab> {
  return Lab.up(plan);
}

function rootCommands(plan: LabPlan): string[] {
  const namespaces = [plan.bridge.netns, ...plan.nodes.map((n) => n.netns)];
  const { host } = plan;
  return [
    // blackholes first: from the moment any lab address exists, none of them can leave by the default route
    ...plan.hostBlackholes.map((route) => routeArgs('add', route).join(' ')),
    ...namespaces.map((netns) => `netns add ${netns}`),
    `link add ${host.device} type veth peer name ${host.bridgePort} netns ${plan.bridge.netns}`,
    ...plan.veths.map(
      ([a, b]) => `link add ${a.name} netns ${a.netns} type veth peer name ${b.name} netns ${b.netns}`,
    ),
    `addr add ${host.ipv4}/${prefixLength(plan.bridge.subnetV4)} dev ${host.device}`,
    `addr add ${host.ipv6}/${prefixLength(plan.bridge.subnetV6)} dev ${host.device} nodad`,
    `link set ${host.device} up`,
  ];
}

function bridgeCommands(plan: LabPlan): string[] {
  const ports = [plan.host.bridgePort, ...plan.veths.map(([, bridgeEnd]) => bridgeEnd.name)];
  return [
    'link set lo up',
    `link add ${plan.bridge.device} type bridge forward_delay 0 mcast_snooping 0`,
    `link set ${plan.bridge.device} up`,
    ...ports.flatMap((port) => [`link set ${port} master ${plan.bridge.device}`, `link set ${port} up`]),
  ];
}

async function configureNode(plan: LabPlan, node: NodePlan): Promise<void> {
  // before any pod veth exists, so every pod veth inherits the defaults
  await sysctlIn(node.netns, {
    'net.ipv4.ip_forward': 1,
    'net.ipv6.conf.all.forwarding': 1,
    'net.ipv4.conf.all.rp_filter': 0,
    'net.ipv4.conf.default.rp_filter': 0,
    [`net.ipv4.conf.${NODE_UPLINK}.rp_filter`]: 0,
    'net.ipv4.conf.default.proxy_arp': 1,
    'net.ipv6.conf.default.accept_dad': 0,
    // a tentative link-local keeps the node from sending neighbour solicitations for forwarded packets
    [`net.ipv6.conf.${NODE_UPLINK}.accept_dad`]: 0,
  });
  await ipBatch(
    [
      'link set lo up',
      `addr add ${node.ipv4}/${prefixLength(plan.bridge.subnetV4)} dev ${NODE_UPLINK}`,
      `addr add ${node.ipv6}/${prefixLength(plan.bridge.subnetV6)} dev ${NODE_UPLINK} nodad`,
      `link set ${NODE_UPLINK} up`,
      `addr add ${node.podGatewayV4}/32 dev lo`,
      ...node.routes.map((route) => routeArgs('add', route).join(' ')),
    ],
    node.netns,
  );
  // The lab plays the CNI, and a CNI masquerades what its pods send to node addresses (kind's
  // kindnet does): a pod reaching another cluster's node (the cache process dialing a peer's etcd)
  // gets its replies before that cluster has any route back to this cluster's pods. Pod-to-pod
  // traffic across clusters stays routed, unmasqueraded.
  const masquerade = (tool: string, podCidr: string, bridge: string) =>
    run('nsenter', [`--net=${netnsPath(node.netns)}`, '--', tool, '-w', '-t', 'nat', '-A', 'POSTROUTING', '-s', podCidr, '-d', bridge, '-j', 'MASQUERADE']);
  await masquerade('iptables', node.podCIDRv4, plan.bridge.subnetV4);
  await masquerade('ip6tables', node.podCIDRv6, plan.bridge.subnetV6);
}

function nodeSideOfPod(pod: PodPlan): string[] {
  return [
    `link set ${pod.hostDevice} up`,
    `addr add ${pod.gatewayV6}/64 dev ${pod.hostDevice} nodad`,
    routeArgs('add', { destination: pod.ipv4, device: pod.hostDevice }).join(' '),
    routeArgs('add', { destination: pod.ipv6, device: pod.hostDevice }).join(' '),
  ];
}

function podSideOfPod(pod: PodPlan): string[] {
  return [
    'link set lo up',
    `addr add ${pod.ipv4}/32 dev ${NODE_UPLINK}`,
    `addr add ${pod.ipv6}/128 dev ${NODE_UPLINK} nodad`,
    `link set ${NODE_UPLINK} up`,
    `route add ${pod.gatewayV4}/32 dev ${NODE_UPLINK} scope link`,
    `route add default via ${pod.gatewayV4} dev ${NODE_UPLINK}`,
    `route add default via ${pod.gatewayV6} dev ${NODE_UPLINK}`,
  ];
}

function prefixLength(cidr: string): string {
  return cidr.split('/')[1];
}

/**
 * The other labs (with a state file) whose ranges `plan` would share, split by `live` (see
 * labsInTheWay): a lab of processes alone asks whether anything runs in it; a lab of clusters
 * (lab/cluster) whether its control plane or kubelets do: pods they left are leftovers too.
 */
export function labsInTheWayOf(plan: LabPlan, live: (prefix: string) => boolean): ReturnType<typeof labsInTheWay> {
  const others = labsWithState()
    .filter((other) => other !== plan.prefix)
    .flatMap((other) => {
      const otherPlan = readState(other);
      return otherPlan ? [{ prefix: other, ranges: planRanges(otherPlan), live: live(other) }] : [];
    });
  return labsInTheWay(planRanges(plan), others);
}

/** Whether the process that built lab `prefix` still runs (it is building it, or keeps it). */
export function builderRuns(prefix: string): boolean {
  const builder = readStateBuilder(prefix);
  return builder !== undefined && isRunning(builder);
}

function hasProcesses(prefix: string, mount: string): boolean {
  return (
    [...processesByNetns(labNetns(prefix)).values()].some((processes) => processes.length > 0) ||
    cgroupProcesses(join(mount, labCgroupRoot(prefix))).length > 0
  );
}

// --- teardown -------------------------------------------------------------------------------------

/**
 * Removes everything of lab `prefix` (idempotent): processes in its namespaces and cgroups, the
 * namespaces (and with them every veth), the host veth, the root-namespace blackholes, the cgroups.
 */
export async function down(prefix: string): Promise<void> {
  if (!LAB_PREFIX_PATTERN.test(prefix)) throw new UserError(`"${prefix}" is not a lab prefix`);
  const mount = assertHostCanRunLab();
  const cgroupRoot = join(mount, labCgroupRoot(prefix));
  const namespaces = labNetns(prefix);
  await killCgroupProcesses(cgroupRoot);
  await killNetnsProcesses(namespaces);
  const plan = readState(prefix);
  const existingBlackholes = new Set(plan ? await hostBlackholes() : []);
  await ipBatch([
    ...(linkExists(hostDeviceName(prefix)) ? [`link del ${hostDeviceName(prefix)}`] : []),
    ...namespaces.map((netns) => `netns del ${netns}`),
    ...(plan?.hostBlackholes ?? [])
      .filter((route) => existingBlackholes.has(route.destination))
      .map((route) => routeArgs('delete', route).join(' ')),
  ]);
  removeCgroup(cgroupRoot);
  removeState(prefix);
}

async function killNetnsProcesses(namespaces: string[]): Promise<void> {
  const living = () => [...processesByNetns(namespaces).values()].flat();
  killAll(living().map((p) => p.pid));
  await waitFor(
    () => living().length === 0,
    PROCESS_EXIT_TIMEOUT_MS,
    `processes in ${namespaces.join(', ')} to exit`,
  );
}

async function killCgroupProcesses(cgroupRoot: string): Promise<void> {
  if (!existsSync(cgroupRoot)) return;
  writeFileSync(join(cgroupRoot, 'cgroup.kill'), '1'); // the whole subtree, including processes forking right now
  await waitFor(
    () => !cgroupPopulated(cgroupRoot),
    PROCESS_EXIT_TIMEOUT_MS,
    `processes in ${cgroupRoot} to exit`,
  );
}

function cgroupPopulated(dir: string): boolean {
  return /^populated 1$/m.test(readFileSync(join(dir, 'cgroup.events'), 'utf8'));
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
