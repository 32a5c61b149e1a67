/**
 * One cluster's official Kubernetes control plane as plain processes: etcd (its own, on
 * loopback), kube-apiserver (Node,RBAC authorization, ServiceAccount tokens, TLS from
 * lab/control-plane/pki.ts), kube-controller-manager and kube-scheduler. Where they run is the
 * caller's: the lab starts them inside the control-plane node's namespace, the tests' harness on
 * this machine's loopback.
 */
import { request } from 'node:https';
import { join } from 'node:path';
import { nthAddress, parseCidr } from '../../lib/net/cidr.js';
import { apiServerArgs, controllerManagerArgs, etcdArgs, schedulerArgs } from './args.js';
import { upstreamBinary } from './binaries.js';
import { createControlPlanePki } from './pki.js';

export interface ControlPlaneSpec {
  clusterName: string;
  /** where certificates, kubeconfigs and etcd's data go */
  dir: string;
  /** the API server's address as nodes and users reach it */
  advertiseAddress: string;
  bindAddress: string;
  apiPort: number;
  etcdClientPort: number;
  etcdPeerPort: number;
  /** primary family first */
  serviceCIDRs: string[];
  /** start kube-controller-manager and kube-scheduler too (default true) */
  controllers?: boolean;
}

/** A started program, as the caller's runner sees it. */
export interface RunningProgram {
  alive(): boolean;
  /** the last lines of its output, for errors */
  logTail(): string;
}

/** Starts a program where the caller wants it (a node's namespace, or here). */
export type ProgramRunner = (name: string, command: string, args: string[]) => RunningProgram;

export interface ControlPlane {
  url: string;
  caCert: string;
  caFile: string;
  /** path of a kubeconfig for a cluster admin (O system:masters), context = cluster name */
  adminKubeconfig: string;
  /** path of a kubeconfig for the kubelet of `node` */
  kubeletKubeconfig(node: string): Promise<string>;
}

const READY_TIMEOUT_MS = 90_000;
const POLL_MS = 200;

export async function startControlPlane(spec: ControlPlaneSpec, run: ProgramRunner): Promise<ControlPlane> {
  const host = spec.advertiseAddress.includes(':') ? `[${spec.advertiseAddress}]` : spec.advertiseAddress;
  const url = `https://${host}:${spec.apiPort}`;
  const firstServiceIP = firstAddress(spec.serviceCIDRs[0]!);
  const pki = await createControlPlanePki({
    dir: spec.dir,
    clusterName: spec.clusterName,
    serverUrl: url,
    serverIPs: [...new Set([spec.advertiseAddress, '127.0.0.1', '::1', firstServiceIP])],
  });
  const name = (program: string) => `${spec.clusterName}-${program}`;
  const etcd = run(
    name('kube-etcd'),
    upstreamBinary('etcd'),
    etcdArgs({ name: spec.clusterName, dataDir: join(spec.dir, 'etcd'), clientPort: spec.etcdClientPort, peerPort: spec.etcdPeerPort }),
  );
  const apiserver = run(
    name('kube-apiserver'),
    upstreamBinary('kube-apiserver'),
    apiServerArgs({
      files: pki.files,
      advertiseAddress: spec.advertiseAddress,
      bindAddress: spec.bindAddress,
      securePort: spec.apiPort,
      etcdClientPort: spec.etcdClientPort,
      serviceCIDRs: spec.serviceCIDRs,
    }),
  );
  await waitFor(`${spec.clusterName}'s kube-apiserver /readyz at ${url}`, [etcd, apiserver], () =>
    httpsOk(`${url}/readyz`, pki.ca.certPem),
  );
  if (spec.controllers !== false) {
    run(
      name('kube-controller-manager'),
      upstreamBinary('kube-controller-manager'),
      controllerManagerArgs({ files: pki.files, clusterName: spec.clusterName, serviceCIDRs: spec.serviceCIDRs }),
    );
    run(name('kube-scheduler'), upstreamBinary('kube-scheduler'), schedulerArgs(pki.files));
  }
  return {
    url,
    caCert: pki.ca.certPem,
    caFile: pki.files.caCert,
    adminKubeconfig: pki.adminKubeconfig,
    kubeletKubeconfig: pki.kubeletKubeconfig,
  };
}

async function waitFor(what: string, programs: RunningProgram[], ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (await ready()) return;
    const dead = programs.find((p) => !p.alive());
    if (dead) throw new Error(`waiting for ${what}: a program exited: ${dead.logTail()}`);
    if (Date.now() > deadline)
      throw new Error(`timed out after ${READY_TIMEOUT_MS / 1000} s waiting for ${what}: ${programs.map((p) => p.logTail()).join(' | ')}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function httpsOk(url: string, ca: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(url, { ca, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** The first usable address of a CIDR (the `kubernetes` Service's ClusterIP). */
function firstAddress(cidr: string): string {
  return nthAddress(parseCidr(cidr), 1);
}
