/**
 * Killing and restarting the lab's daemons (agents, etcd, clustermesh-apiserver) as an operator or a
 * crash would. The lab starts them detached with a pid file each; a restart reuses the exact command
 * line of the running process (read from /proc), so the suite never re-derives the lab's flags.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunningLab } from '../../lab/cluster/index.js';
import { type LabProcess, isAlive, startProcess, waitReady } from '../../lab/cluster/processes.js';
import { LAB_PORTS } from '../../lab/cluster/paths.js';
import type { Backend } from '../../lab/workloads/deployment.js';
import { waitFor } from './wait.js';

/** One lab process: its pid-file name and where it runs. */
export interface Daemon {
  name: string;
  /** node or node/pod to run in */
  target: string;
  /** false = not in the node's cgroup (control-plane daemons); undefined = the node's cgroup */
  cgroup: false | undefined;
}

/** A daemon's command line, kept while it is down so it can be started again. */
export interface StoppedDaemon {
  daemon: Daemon;
  argv: string[];
}

export const agentDaemon = (node: string): Daemon => ({ name: `${node}-agent`, target: node, cgroup: undefined });
export const etcdDaemon = (cluster: string): Daemon => ({ name: `${cluster}-etcd`, target: `${cluster}-control-plane`, cgroup: false });
export const apiserverDaemon = (cluster: string): Daemon => ({
  name: `${cluster}-clustermesh-apiserver`,
  target: `${cluster}-control-plane`,
  cgroup: false,
});
/** an echo pod's server (deployEcho names it `<cluster>-<pod>` and runs it in the pod) */
export const echoDaemon = (b: Backend): Daemon => ({ name: `${b.cluster}-${b.pod}`, target: `${b.node}/${b.pod}`, cgroup: undefined });

export function daemonPid(running: RunningLab, daemon: Daemon): number {
  const file = join(running.paths.pids, `${daemon.name}.pid`);
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(pid) || !isAlive(pid)) throw new Error(`lab daemon ${daemon.name} is not running (pid file ${file})`);
  return pid;
}

/** argv of a running process (NUL-separated /proc/<pid>/cmdline). */
export function processArgv(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0$/, '').split('\0');
}

/** SIGKILL, as a crash: nothing of the daemon gets to clean up. Returns once it is gone. */
export async function killDaemon(running: RunningLab, daemon: Daemon): Promise<StoppedDaemon> {
  const pid = daemonPid(running, daemon);
  const argv = processArgv(pid);
  process.kill(pid, 'SIGKILL');
  await waitFor(`${daemon.name} (pid ${pid}) to exit`, () => isAlive(pid), (alive) => !alive, 5000, 20);
  return { daemon, argv };
}

/** Starts a killed daemon again with its command line (plus `extraArgs`). */
export function startDaemon(running: RunningLab, stopped: StoppedDaemon, extraArgs: string[] = []): LabProcess {
  const [command, ...args] = stopped.argv;
  return startProcess(running.lab, stopped.daemon.name, command, [...args, ...extraArgs], {
    target: stopped.daemon.target,
    cgroup: stopped.daemon.cgroup,
  });
}

/** The node address its agent's status API listens on. */
export function agentStatusUrl(running: RunningLab, node: string): string {
  const plan = running.plan.nodes.find((n) => n.name === node);
  if (!plan) throw new Error(`the lab has no node ${node}`);
  return `http://${plan.ipv4}:${LAB_PORTS.agentStatus}`;
}

/** Kills a node's agent and starts it again (with `extraArgs`), waiting until its status API answers. */
export async function restartAgent(running: RunningLab, node: string, extraArgs: string[] = []): Promise<void> {
  const stopped = await killDaemon(running, agentDaemon(node));
  const proc = startDaemon(running, stopped, extraArgs);
  const url = `${agentStatusUrl(running, node)}/status`;
  await waitReady(proc, `the agent on ${node}`, async () => (await fetch(url, { signal: AbortSignal.timeout(1000) })).ok);
}
