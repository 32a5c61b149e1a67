/**
 * A running two-cluster lab on the lab/topology namespaces: per cluster the official control
 * plane in its control-plane node (lab/control-plane), a lab kubelet in every node
 * (lab/kubelet), then the product installed by the CLI's own install (`helm upgrade --install` of
 * the chart: the daemons run only as the chart's pods) and connect, passed in as hooks (the lab
 * never imports the CLI).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, type V1Node } from '@kubernetes/client-node';
import { parse, stringify } from 'yaml';
import { UserError } from '../../lib/errors.js';
import { type ControlPlane, startControlPlane } from '../control-plane/index.js';
import { upstreamBinary } from '../control-plane/binaries.js';
import { Lab, builderRuns, down as topologyDown, labsInTheWayOf } from '../topology/apply.js';
import { STATE_DIR } from '../topology/host.js';
import { type ClusterPlan, DEFAULT_LAB_SPEC, type LabPlan, type NodePlan, planLab } from '../topology/plan.js';
import { labKubeConfig } from './api.js';
import { BPFFS, LAB_PORTS, labPaths } from './paths.js';
import { isAlive, logTail, runningPid, runsProcesses, startProcess, stopProcesses, waitReady } from './processes.js';

export const LAB_NAMESPACE = 'clustermesh-system';
/** the annotation `clustermesh connect` reads instead of a NodePort (cli/connect.ts) */
export const ETCD_ENDPOINT_ANNOTATION = 'clustermesh.io/etcd-endpoint';
const CONTROL_PLANE_TAINT = 'node-role.kubernetes.io/control-plane:NoSchedule';
const NODES_READY_TIMEOUT_MS = 90_000;

/** The product code the lab runs against its clusters (given by cli/, which owns it). */
export interface LabHooks {
  /** `clustermesh install` of one lab cluster with the lab's values file, waiting until ready */
  install(args: { kubeconfig: string; context: string; name: string; id: number; valuesFile: string }): Promise<void>;
  connect(kubeconfig: string, contextA: string, contextB: string): Promise<void>;
}

export interface LabUpOptions {
  prefix?: string;
  /** chart values per cluster name, merged over the lab's own (e.g. agent.extraArgs) */
  values?: Record<string, Record<string, unknown>>;
  /** the package's dist/ directory (the project's image runs from it) */
  distDir: string;
  progress?: (line: string) => void;
  /** skip connect (tests that connect through the CLI themselves) */
  connect?: boolean;
}

export interface RunningLab {
  lab: Lab;
  plan: LabPlan;
  kubeconfig: string;
  paths: ReturnType<typeof labPaths>;
}

const PROGRAMS = { kubelet: 'lab/kubelet/main.js', apiserver: 'clustermesh-apiserver/main.js', agent: 'agent/main.js' } as const;

/** Refuses, with one line, when a program the lab runs has not been built. */
export function assertBuilt(distDir: string): void {
  const missing = Object.values(PROGRAMS).filter((p) => !existsSync(join(distDir, p)));
  if (missing.length > 0)
    throw new UserError(`${missing.map((p) => `dist/${p}`).join(', ')} missing: build first (npm run build)`);
}

export async function labUp(options: LabUpOptions, hooks: LabHooks): Promise<RunningLab> {
  const prefix = options.prefix ?? DEFAULT_LAB_SPEC.prefix;
  const progress = options.progress ?? (() => undefined);
  assertBuilt(options.distDir);
  const kubeletVersion = kubernetesVersion();
  await labDown(prefix);
  ensureBpffs();
  const plan = planLab({ ...DEFAULT_LAB_SPEC, prefix });
  // a lab on these ranges whose control plane and kubelets are gone (a run killed before its
  // teardown; its pods may still run) is removed whole; one that runs is refused by Lab.up
  const { crashed } = labsInTheWayOf(plan, (other) => builderRuns(other) || runsProcesses(other));
  for (const other of crashed) {
    await labDown(other);
    progress(`removed lab ${other}: a run killed before its teardown left it on the same ranges`);
  }
  progress(`network: ${plan.nodes.length} nodes on bridge ${plan.bridge.subnetV4}`);
  const lab = await Lab.up(plan);
  const paths = labPaths(prefix);
  try {
    mkdirSync(paths.root, { recursive: true });
    const controlPlanes = await Promise.all(plan.clusters.map((c) => startClusterControlPlane(lab, c)));
    writeMergedKubeconfig(plan, controlPlanes);
    progress(`Kubernetes ${kubeletVersion} control planes up: ${plan.clusters.map((c, i) => `${c.name} ${controlPlanes[i].url}`).join(', ')}`);
    await Promise.all(plan.clusters.map((c, i) => startKubelets(lab, c, controlPlanes[i], options.distDir, kubeletVersion)));
    await Promise.all(plan.clusters.map((c) => waitNodesReady(paths.kubeconfig, c)));
    progress(`nodes ready: ${plan.nodes.map((n) => n.name).join(', ')}`);
    await Promise.all(
      plan.clusters.map(async (c) => {
        const valuesFile = paths.chartValues(c.name);
        writeFileSync(valuesFile, stringify(mergeValues(chartValues(lab, c), options.values?.[c.name] ?? {})));
        await hooks.install({ kubeconfig: paths.kubeconfig, context: c.name, name: c.name, id: c.id, valuesFile });
        progress(`${c.name}: clustermesh installed (helm), apiserver and agents ready`);
      }),
    );
    if (options.connect !== false) {
      const [a, b] = plan.clusters;
      await hooks.connect(paths.kubeconfig, a.name, b.name);
      progress(`connected ${a.name} <-> ${b.name}`);
    }
  } catch (err) {
    // CLUSTERMESH_LAB_KEEP=1 leaves a failed lab up to look at (then `clustermesh lab down`)
    if (process.env.CLUSTERMESH_LAB_KEEP !== '1') await labDown(prefix).catch(() => undefined);
    throw err;
  }
  return { lab, plan, kubeconfig: paths.kubeconfig, paths };
}

/** A lab that `labUp` brought up, possibly in another process. */
export function openRunningLab(prefix: string): RunningLab {
  const lab = Lab.open(prefix);
  const paths = labPaths(prefix);
  return { lab, plan: lab.plan, kubeconfig: paths.kubeconfig, paths };
}

/** Removes everything of the lab (idempotent): processes, namespaces, cgroups, bpffs pins, files. */
export async function labDown(prefix: string): Promise<void> {
  await stopProcesses(prefix);
  await topologyDown(prefix);
  const paths = labPaths(prefix);
  rmSync(paths.bpfRoot, { recursive: true, force: true });
  rmSync(paths.root, { recursive: true, force: true });
  try {
    rmdirSync(STATE_DIR); // only when no other lab is up
  } catch {
    // not empty or gone
  }
}

/** "v1.34.4": the version of the built control plane, which the lab kubelets report too. */
function kubernetesVersion(): string {
  const text = execFileSync(upstreamBinary('kube-apiserver'), ['--version'], { encoding: 'utf8' });
  const match = /v\d+\.\d+\.\d+\S*/.exec(text);
  if (!match) throw new Error(`cannot read the version of kube-apiserver from "${text.trim()}"`);
  return match[0];
}

function ensureBpffs(): void {
  const mounted = readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === BPFFS && l.split(' ')[2] === 'bpf');
  if (!mounted) execFileSync('mount', ['-t', 'bpf', 'bpf', BPFFS]);
}

function controlPlaneNode(plan: LabPlan, cluster: ClusterPlan): NodePlan {
  return plan.nodes.find((n) => n.name === cluster.nodes[0])!;
}

function nodesOf(plan: LabPlan, cluster: ClusterPlan): NodePlan[] {
  return plan.nodes.filter((n) => n.cluster === cluster.name);
}

async function startClusterControlPlane(lab: Lab, cluster: ClusterPlan): Promise<ControlPlane> {
  const cp = controlPlaneNode(lab.plan, cluster);
  return startControlPlane(
    {
      clusterName: cluster.name,
      dir: labPaths(lab.plan.prefix).controlPlane(cluster.name),
      advertiseAddress: cp.ipv4,
      bindAddress: '0.0.0.0',
      apiPort: LAB_PORTS.kubeApi,
      etcdClientPort: LAB_PORTS.kubeEtcd,
      etcdPeerPort: LAB_PORTS.kubeEtcdPeer,
      serviceCIDRs: [cluster.serviceCIDRv4, cluster.serviceCIDRv6],
    },
    (name, command, args) => {
      const proc = startProcess(lab, name, command, args, { target: cp.name, cgroup: false });
      return { alive: () => isAlive(proc.pid), logTail: () => `${name}: ${logTail(proc.log)} (log: ${proc.log})` };
    },
  );
}

/** One kubeconfig holding every lab cluster's admin context. */
function writeMergedKubeconfig(plan: LabPlan, controlPlanes: ControlPlane[]): void {
  const configs = controlPlanes.map((cp) => parse(readFileSync(cp.adminKubeconfig, 'utf8')));
  const merged = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: configs.flatMap((c) => c.clusters),
    users: configs.flatMap((c) => c.users),
    contexts: configs.flatMap((c) => c.contexts),
    'current-context': plan.clusters[0].name,
    preferences: {},
  };
  writeFileSync(labPaths(plan.prefix).kubeconfig, stringify(merged), { mode: 0o600 });
}

/** A lab kubelet in every node of the cluster (the control-plane node tainted, as kind does). */
async function startKubelets(lab: Lab, cluster: ClusterPlan, cp: ControlPlane, distDir: string, version: string): Promise<void> {
  const paths = labPaths(lab.plan.prefix);
  for (const node of nodesOf(lab.plan, cluster)) {
    const args = [
      join(distDir, PROGRAMS.kubelet),
      `--kubeconfig=${await cp.kubeletKubeconfig(node.name)}`,
      `--node-name=${node.name}`,
      `--lab-prefix=${lab.plan.prefix}`,
      `--state-dir=${paths.kubelet(node.name)}`,
      `--dist-dir=${distDir}`,
      `--kubelet-version=${version}`,
      `--etcd-binary=${upstreamBinary('etcd')}`,
      '--cleanup-on-exit',
      ...(node.role === 'control-plane' ? [`--register-with-taints=${CONTROL_PLANE_TAINT}`] : []),
    ];
    startProcess(lab, kubeletProcessName(node.name), process.execPath, args, { target: node.name, cgroup: false });
  }
}

const kubeletProcessName = (node: string) => `${node}-kubelet`;

/** The pid of a node's lab kubelet, from its pid file (startProcess); undefined when it does not run. */
export function kubeletPid(running: RunningLab, node: string): number | undefined {
  return runningPid(join(running.paths.pids, `${kubeletProcessName(node)}.pid`));
}

/** Waits until every node of the cluster is registered and Ready, then labels the control plane's role. */
async function waitNodesReady(kubeconfig: string, cluster: ClusterPlan): Promise<void> {
  const core = labKubeConfig(kubeconfig, cluster.name).makeApiClient(CoreV1Api);
  const ready = (n: V1Node) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  await waitReady(undefined, `${cluster.name}'s nodes ${cluster.nodes.join(', ')} to be Ready (see the kubelet logs)`, async () => {
    const nodes = (await core.listNode()).items;
    return cluster.nodes.every((name) => nodes.some((n) => n.metadata?.name === name && ready(n)));
  }, NODES_READY_TIMEOUT_MS);
  // NodeRestriction keeps node-role labels away from kubelets; the admin sets it, as kubeadm does.
  await core.patchNode({
    name: cluster.nodes[0],
    body: [{ op: 'add', path: '/metadata/labels/node-role.kubernetes.io~1control-plane', value: '' }],
  });
}

/**
 * The chart values that fit the lab: nodes share one kernel and one bpffs, so each agent pins
 * and attaches in its own node's directory and cgroup; peers reach the clustermesh-apiserver's
 * etcd on a worker's IP (hostPort: the lab runs no NodePort proxy).
 */
export function chartValues(lab: Lab, cluster: ClusterPlan): Record<string, unknown> {
  const paths = labPaths(lab.plan.prefix);
  const apiserverNode = nodesOf(lab.plan, cluster).find((n) => n.role === 'worker')!;
  return {
    // the local ranges the agents refuse from any peer (agent --pod-cidrs/--service-cidrs)
    cluster: { podCIDRs: [cluster.podCIDRv4, cluster.podCIDRv6], serviceCIDRs: [cluster.serviceCIDRv4, cluster.serviceCIDRv6] },
    apiserver: {
      nodeSelector: { 'kubernetes.io/hostname': apiserverNode.name },
      etcd: { hostPort: LAB_PORTS.etcd },
      // the agents' way to this etcd in cached mode: no Service DNS name resolves in the lab
      kvstoremesh: { endpoint: `https://${apiserverNode.ipv4}:${LAB_PORTS.etcd}` },
      service: { annotations: { [ETCD_ENDPOINT_ANNOTATION]: `https://${apiserverNode.ipv4}:${LAB_PORTS.etcd}` } },
    },
    agent: {
      bpfPinDir: `${paths.bpfRoot}/$(NODE_NAME)`,
      cgroupHostPath: join(lab.cgroupRoot, lab.plan.cgroupRoot),
      cgroupSubPath: '$(NODE_NAME)',
      statusPort: LAB_PORTS.agentStatus,
      healthPort: LAB_PORTS.agentHealth,
    },
  };
}

/** Helm's merge of values: objects merge key by key, anything else in `over` replaces. Pure. */
export function mergeValues(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) out[key] = isObject(value) && isObject(out[key]) ? mergeValues(out[key], value) : value;
  return out;
}
