/**
 * Detached lab processes: each runs in its own session (setsid), logs to logs/<name>.log and has a
 * pid file, so `lab up` can return and `lab down` (another process) can stop them. A pid file holds
 * the process's identity (pid and start time, lab/topology/host.ts), never signalled unless it still
 * names the same process: the files of a killed run outlive it, and their pids go to other processes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from '../topology/apply.js';
import { formatProcessIdentity, isRunning, parseProcessIdentity, processIdentity } from '../topology/host.js';
import { labPaths } from './paths.js';

const STOP_TIMEOUT_MS = 5000;
const POLL_MS = 50;

export interface StartOptions {
  /** node or node/pod to run in; absent = the root namespace */
  target?: string;
  /** cgroup directory to join (default: the node's), false = none */
  cgroup?: string | false;
}

export interface LabProcess {
  name: string;
  pid: number;
  log: string;
  /** where this run's output starts in `log` (a restarted process appends to its predecessor's) */
  logOffset: number;
}

/** Starts `command args` detached; returns once it has a pid. */
export function startProcess(
  lab: Lab,
  name: string,
  command: string,
  args: string[],
  options: StartOptions = {},
): LabProcess {
  const paths = labPaths(lab.plan.prefix);
  mkdirSync(paths.logs, { recursive: true });
  mkdirSync(paths.pids, { recursive: true });
  const log = join(paths.logs, `${name}.log`);
  const fd = openSync(log, 'a');
  const logOffset = fstatSync(fd).size;
  let child: ChildProcess;
  try {
    const stdio: ['ignore', number, number] = ['ignore', fd, fd];
    // setsid: its own session, so a Ctrl-C meant for the CLI does not reach it (no fork: the pid stays)
    child = options.target
      ? lab.spawnIn(options.target, 'setsid', [command, ...args], { cgroup: options.cgroup, stdio })
      : spawn('setsid', [command, ...args], { stdio });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`cannot start ${name} (${command})`);
  child.unref();
  // the identity is fixed at fork; a process that already exited leaves an empty file (nothing to stop)
  const identity = processIdentity(child.pid);
  writeFileSync(join(paths.pids, `${name}.pid`), identity ? `${formatProcessIdentity(identity)}\n` : '');
  return { name, pid: child.pid, log, logOffset };
}

/** What this run of the process has written so far (not its predecessors' lines). */
export function logSinceStart(proc: LabProcess): string {
  return existsSync(proc.log) ? readFileSync(proc.log).subarray(proc.logOffset).toString('utf8') : '';
}

/** Whether the process is stopped by a signal (SIGSTOP), as a frozen kubelet is. */
export function isStopped(pid: number): boolean {
  try {
    return /^State:\s+T/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** Whether a process (not a zombie) has this pid. */
export function isAlive(pid: number): boolean {
  return processIdentity(pid) !== undefined;
}

export function logTail(path: string, lines = 5): string {
  if (!existsSync(path)) return '(no log)';
  return readFileSync(path, 'utf8').trim().split('\n').slice(-lines).join(' | ');
}

/**
 * Polls `ready` until it holds; fails early with the process's log when it died, or at the deadline.
 * Bounded; never a blind sleep.
 */
export async function waitReady(
  proc: LabProcess | undefined,
  what: string,
  ready: () => Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ready().catch(() => false)) return;
    if (proc && !isAlive(proc.pid))
      throw new Error(`${proc.name} exited before ${what}: ${logTail(proc.log)} (log: ${proc.log})`);
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${proc ? `: ${logTail(proc.log)} (log: ${proc.log})` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/**
 * SIGKILL to each of `pids`, as a crash; resolves once every one is gone (a zombie nobody reaps yet
 * counts as gone: isAlive). No pid at all is an error: `what` was expected to run.
 */
export async function killProcesses(pids: number[], what: string): Promise<void> {
  if (pids.length === 0) throw new Error(`no process of ${what} to kill`);
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  await waitReady(undefined, `${what} (pids ${pids.join(',')}) to exit`, async () => !pids.some(isAlive), STOP_TIMEOUT_MS);
}

/** Reads a lab process's pid file: the pid while that same process runs, else undefined. */
export function runningPid(pidFile: string): number | undefined {
  if (!existsSync(pidFile)) return undefined;
  const identity = parseProcessIdentity(readFileSync(pidFile, 'utf8'));
  return identity && isRunning(identity) ? identity.pid : undefined;
}

/** Whether any process with a pid file of lab `prefix` still runs. */
export function runsProcesses(prefix: string): boolean {
  const dir = labPaths(prefix).pids;
  return existsSync(dir) && readdirSync(dir).some((f) => f.endsWith('.pid') && runningPid(join(dir, f)) !== undefined);
}

/** Stops every process with a pid file: SIGTERM, then SIGKILL after a bounded wait. */
export async function stopProcesses(prefix: string, names?: string[]): Promise<void> {
  const dir = labPaths(prefix).pids;
  if (!existsSync(dir)) return;
  const files = readdirSync(dir).filter((f) => f.endsWith('.pid') && (!names || names.includes(f.slice(0, -4))));
  const pids = files.flatMap((f) => runningPid(join(dir, f)) ?? []);
  for (const pid of pids) signal(pid, 'SIGTERM');
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (pids.some(isAlive) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  for (const pid of pids.filter(isAlive)) signal(pid, 'SIGKILL');
  for (const f of files) rmSync(join(dir, f), { force: true });
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}
