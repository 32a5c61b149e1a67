/**
 * A running two-cluster lab: on the lab/topology namespaces it starts, per cluster, the lab
 * Kubernetes API server, a real etcd (mTLS) and the clustermesh-apiserver in the control-plane
 * node, one agent per worker (in the worker's cgroup), and the lab kubelet that projects the
 * remotes Secret; it writes the Node, Service and agent Pod objects; then it runs the product's
 * install bootstrap and connect, passed in as hooks (the lab never imports the CLI).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { parse, stringify } from 'yaml';
import { UserError } from '../../lib/errors.js';
import type { CertifiedKey } from '../../lib/pki.js';
import { Lab, down as topologyDown } from '../topology/apply.js';
import { STATE_DIR } from '../topology/host.js';
import { type ClusterPlan, DEFAULT_LAB_SPEC, type LabPlan, type NodePlan, planLab } from '../topology/plan.js';
import { nthAddress, parseCidr } from '../../lib/net/cidr.js';
import { labApi } from './api.js';
import { BPFFS, LAB_PORTS, labPaths } from './paths.js';
import { type LabProcess, startProcess, stopProcesses, waitReady } from './processes.js';

export const LAB_NAMESPACE = 'clustermesh-system';
export const ETCD_ENDPOINT_ANNOTATION = 'clustermesh.io/etcd-endpoint';

export interface ClusterPkiFiles {
  ca: CertifiedKey;
  server: CertifiedKey;
  admin: CertifiedKey;
}

/** The product code the lab runs against its clusters (given by cli/, which owns it). */
export interface LabHooks {
  /** install's certificate/Secret/ConfigMap part against one lab cluster */
  bootstrap(args: {
    kubeconfig: string;
    context: string;
    name: string;
    id: number;
    nodePort: number;
    extraConfig: Record<string, string>;
  }): Promise<ClusterPkiFiles>;
  connect(kubeconfig: string, contextA: string, contextB: string): Promise<void>;
}

export interface LabUpOptions {
  prefix?: string;
  /** the package's dist/ directory (daemons are run from there) */
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

const DAEMONS = {
  kubeApi: 'lab/kube-apiserver/main.js',
  kubelet: 'lab/cluster/kubelet.js',
  apiserver: 'clustermesh-apiserver/main.js',
  agent: 'agent/main.js',
} as const;

/** Refuses, with one line, when a program the lab runs has not been built. */
export function assertBuilt(distDir: string): void {
  const missing = Object.values(DAEMONS).filter((p) => !existsSync(join(distDir, p)));
  if (missing.length > 0)
    throw new UserError(`${missing.map((p) => `dist/${p}`).join(', ')} missing: build first (npm run build)`);
}

export async function labUp(options: LabUpOptions, hooks: LabHooks): Promise<RunningLab> {
  const prefix = options.prefix ?? DEFAULT_LAB_SPEC.prefix;
  const progress = options.progress ?? (() => undefined);
  assertBuilt(options.distDir);
  await labDown(prefix);
  ensureBpffs();
  const plan = planLab({ ...DEFAULT_LAB_SPEC, prefix });
  progress(`network: ${plan.nodes.length} nodes on bridge ${plan.bridge.subnetV4}`);
  const lab = await Lab.up(plan);
  const paths = labPaths(prefix);
  try {
    await Promise.all(plan.clusters.map((c) => startKubeApi(lab, c, options.distDir)));
    writeMergedKubeconfig(plan);
    await Promise.all(plan.clusters.map((c) => startCluster(lab, c, options.distDir, hooks, progress)));
    if (options.connect !== false) {
      const [a, b] = plan.clusters;
      await hooks.connect(paths.kubeconfig, a.name, b.name);
      progress(`connected ${a.name} <-> ${b.name}`);
    }
  } catch (err) {
    await labDown(prefix).catch(() => undefined);
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

function ensureBpffs(): void {
  const mounted = readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === BPFFS && l.split(' ')[2] === 'bpf');
  if (!mounted) execFileSync('mount', ['-t', 'bpf', 'bpf', BPFFS]);
}

function controlPlane(lab: Lab, cluster: ClusterPlan): NodePlan {
  return lab.plan.nodes.find((n) => n.name === cluster.nodes[0])!;
}

function workers(lab: Lab, cluster: ClusterPlan): NodePlan[] {
  return lab.plan.nodes.filter((n) => n.cluster === cluster.name && n.role === 'worker');
}

async function startKubeApi(lab: Lab, cluster: ClusterPlan, distDir: string): Promise<void> {
  const cp = controlPlane(lab, cluster);
  const paths = labPaths(lab.plan.prefix);
  mkdirSync(paths.root, { recursive: true });
  const proc = startProcess(
    lab,
    `${cluster.name}-kube-apiserver`,
    process.execPath,
    [join(distDir, DAEMONS.kubeApi), '--listen', `${cp.ipv4}:${LAB_PORTS.kubeApi}`, '--kubeconfig-out', paths.clusterKubeconfig(cluster.name), '--context', cluster.name],
    { target: cp.name, cgroup: false },
  );
  await waitReady(proc, `the ${cluster.name} Kubernetes API`, async () =>
    existsSync(paths.clusterKubeconfig(cluster.name)) && (await httpOk(`http://${cp.ipv4}:${LAB_PORTS.kubeApi}/readyz`)),
  );
}

/** One kubeconfig holding every lab cluster's context. */
function writeMergedKubeconfig(plan: LabPlan): void {
  const paths = labPaths(plan.prefix);
  const configs = plan.clusters.map((c) => parse(readFileSync(paths.clusterKubeconfig(c.name), 'utf8')));
  const merged = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: configs.flatMap((c) => c.clusters),
    users: configs.flatMap((c) => c.users),
    contexts: configs.flatMap((c) => c.contexts),
    'current-context': plan.clusters[0].name,
    preferences: {},
  };
  writeFileSync(paths.kubeconfig, stringify(merged), { mode: 0o600 });
}

async function startCluster(
  lab: Lab,
  cluster: ClusterPlan,
  distDir: string,
  hooks: LabHooks,
  progress: (line: string) => void,
): Promise<void> {
  const prefix = lab.plan.prefix;
  const paths = labPaths(prefix);
  const cp = controlPlane(lab, cluster);
  const api = labApi(paths.kubeconfig, cluster.name);
  for (const node of lab.plan.nodes.filter((n) => n.cluster === cluster.name)) await api.put(nodeObject(node));
  const pki = await hooks.bootstrap({
    kubeconfig: paths.kubeconfig,
    context: cluster.name,
    name: cluster.name,
    id: cluster.id,
    nodePort: 32378 + cluster.id,
    extraConfig: {
      'remotes-mount-dir': paths.remotes(cluster.name),
      'apiserver-health-url': `http://${cp.ipv4}:${LAB_PORTS.apiserverHealth}`,
      'agent-status-port': String(LAB_PORTS.agentStatus),
    },
  });
  const files = writePki(paths.pki(cluster.name), pki);
  const etcdUrl = `https://${cp.ipv4}:${LAB_PORTS.etcd}`;
  await startEtcd(lab, cluster, cp, files, pki);
  progress(`${cluster.name}: Kubernetes API and etcd up on ${cp.name} (${cp.ipv4})`);
  await api.put(apiserverService(cluster, etcdUrl));
  const apiserver = startProcess(
    lab,
    `${cluster.name}-clustermesh-apiserver`,
    process.execPath,
    [
      join(distDir, DAEMONS.apiserver),
      `--cluster-name=${cluster.name}`,
      `--cluster-id=${cluster.id}`,
      `--kubeconfig=${paths.clusterKubeconfig(cluster.name)}`,
      `--etcd-endpoints=${etcdUrl}`,
      `--etcd-ca=${files.ca}`,
      `--etcd-cert=${files.adminCert}`,
      `--etcd-key=${files.adminKey}`,
      `--health-addr=${cp.ipv4}:${LAB_PORTS.apiserverHealth}`,
      '--global-namespaces-default=true',
    ],
    { target: cp.name, cgroup: false },
  );
  startProcess(
    lab,
    `${cluster.name}-kubelet`,
    process.execPath,
    [join(distDir, DAEMONS.kubelet), '--kubeconfig', paths.clusterKubeconfig(cluster.name), '--namespace', LAB_NAMESPACE, '--secret', 'clustermesh-remotes', '--dir', paths.remotes(cluster.name)],
  );
  mkdirSync(paths.remotes(cluster.name), { recursive: true });
  await waitReady(apiserver, `${cluster.name}'s clustermesh-apiserver /readyz`, () =>
    httpOk(`http://${cp.ipv4}:${LAB_PORTS.apiserverHealth}/readyz`),
  );
  progress(`${cluster.name}: clustermesh-apiserver ready`);
  await Promise.all(workers(lab, cluster).map((node) => startAgent(lab, cluster, node, distDir)));
  progress(`${cluster.name}: ${workers(lab, cluster).length} agents answering`);
}

function writePki(dir: string, pki: ClusterPkiFiles) {
  mkdirSync(dir, { recursive: true });
  const files = {
    ca: join(dir, 'ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    adminCert: join(dir, 'admin.crt'),
    adminKey: join(dir, 'admin.key'),
  };
  writeFileSync(files.ca, pki.ca.certPem);
  writeFileSync(files.serverCert, pki.server.certPem);
  writeFileSync(files.serverKey, pki.server.keyPem, { mode: 0o600 });
  writeFileSync(files.adminCert, pki.admin.certPem);
  writeFileSync(files.adminKey, pki.admin.keyPem, { mode: 0o600 });
  return files;
}

async function startEtcd(
  lab: Lab,
  cluster: ClusterPlan,
  cp: NodePlan,
  files: ReturnType<typeof writePki>,
  pki: ClusterPkiFiles,
): Promise<LabProcess> {
  const paths = labPaths(lab.plan.prefix);
  const url = `https://${cp.ipv4}:${LAB_PORTS.etcd}`;
  const peer = 'http://127.0.0.1:2380'; // loopback of the control-plane namespace: never leaves it
  const proc = startProcess(
    lab,
    `${cluster.name}-etcd`,
    'etcd',
    [
      `--name=${cluster.name}`,
      `--data-dir=${paths.etcdData(cluster.name)}`,
      `--listen-client-urls=${url},https://127.0.0.1:${LAB_PORTS.etcd}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=${cluster.name}=${peer}`,
      `--cert-file=${files.serverCert}`,
      `--key-file=${files.serverKey}`,
      `--trusted-ca-file=${files.ca}`,
      '--client-cert-auth',
      '--logger=zap',
      '--log-outputs=stderr',
      '--log-level=warn',
    ],
    { target: cp.name, cgroup: false },
  );
  await waitReady(proc, `${cluster.name}'s etcd /health`, () => etcdHealthy(url, pki));
  return proc;
}

function etcdHealthy(url: string, pki: ClusterPkiFiles): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      `${url}/health`,
      { ca: pki.ca.certPem, cert: pki.admin.certPem, key: pki.admin.keyPem, timeout: 1000 },
      (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve(res.statusCode === 200 && /"health":\s*"true"/.test(body)));
      },
    );
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

async function startAgent(lab: Lab, cluster: ClusterPlan, node: NodePlan, distDir: string): Promise<void> {
  const paths = labPaths(lab.plan.prefix);
  const args = agentArgs(lab, cluster, node);
  await labApi(paths.kubeconfig, cluster.name).put(agentPod(cluster, node, args));
  const proc = startProcess(lab, `${node.name}-agent`, process.execPath, [join(distDir, DAEMONS.agent), ...args], { target: node.name });
  await waitReady(proc, `the agent on ${node.name}`, () => httpOk(`http://${node.ipv4}:${LAB_PORTS.agentStatus}/status`));
}

function agentArgs(lab: Lab, cluster: ClusterPlan, node: NodePlan): string[] {
  const paths = labPaths(lab.plan.prefix);
  return [
    `--cluster-name=${cluster.name}`,
    `--cluster-id=${cluster.id}`,
    `--node-name=${node.name}`,
    `--kubeconfig=${paths.clusterKubeconfig(cluster.name)}`,
    `--clustermesh-config=${paths.remotes(cluster.name)}`,
    `--bpf-pin-dir=${paths.bpfPinDir(node.name)}`,
    `--cgroup=${lab.nodeCgroupDir(node.name)}`,
    `--health-addr=${node.ipv4}:${LAB_PORTS.agentHealth}`,
    `--status-addr=${node.ipv4}:${LAB_PORTS.agentStatus}`,
    `--pod-cidrs=${cluster.podCIDRv4},${cluster.podCIDRv6}`,
    `--service-cidrs=${cluster.serviceCIDRv4},${cluster.serviceCIDRv6}`,
  ];
}

async function httpOk(url: string): Promise<boolean> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(1000) })).ok;
  } catch {
    return false;
  }
}

// --- objects the lab writes as kubelet / node controller / chart would ---------------------------

function nodeObject(node: NodePlan): KubernetesObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: node.name,
      labels: {
        'kubernetes.io/hostname': node.name,
        ...(node.role === 'control-plane' ? { 'node-role.kubernetes.io/control-plane': '' } : {}),
      },
    },
    spec: { podCIDR: node.podCIDRv4, podCIDRs: [node.podCIDRv4, node.podCIDRv6] },
    status: {
      addresses: [
        { type: 'InternalIP', address: node.ipv4 },
        { type: 'InternalIP', address: node.ipv6 },
        { type: 'Hostname', address: node.name },
      ],
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }],
    },
  } as KubernetesObject;
}

/** The Service the chart would create, with the lab's direct etcd address as the endpoint override. */
function apiserverService(cluster: ClusterPlan, etcdUrl: string): KubernetesObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: 'clustermesh-apiserver',
      namespace: LAB_NAMESPACE,
      labels: { 'app.kubernetes.io/name': 'clustermesh-apiserver', 'app.kubernetes.io/part-of': 'clustermesh' },
      annotations: { [ETCD_ENDPOINT_ANNOTATION]: etcdUrl },
    },
    spec: {
      type: 'NodePort',
      clusterIP: nthAddress(parseCidr(cluster.serviceCIDRv4), 2),
      selector: { 'app.kubernetes.io/name': 'clustermesh-apiserver' },
      ports: [{ name: 'etcd', port: LAB_PORTS.etcd, targetPort: LAB_PORTS.etcd, protocol: 'TCP', nodePort: 32378 + cluster.id }],
    },
  } as KubernetesObject;
}

function agentPod(cluster: ClusterPlan, node: NodePlan, args: string[]): KubernetesObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `clustermesh-agent-${node.name}`,
      namespace: LAB_NAMESPACE,
      labels: { 'app.kubernetes.io/name': 'clustermesh-agent', 'app.kubernetes.io/part-of': 'clustermesh', 'clustermesh.io/cluster-name': cluster.name },
    },
    spec: { nodeName: node.name, hostNetwork: true, containers: [{ name: 'clustermesh-agent', image: 'lab', args }] },
    status: { phase: 'Running', hostIP: node.ipv4, podIP: node.ipv4, conditions: [{ type: 'Ready', status: 'True' }] },
  } as KubernetesObject;
}
