/**
 * The lab's I/O on the host: running `ip`, finding namespaces, processes and the cgroup2 mount,
 * and the state file that lets `down` and `status` work from another process (or after a crash).
 */
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { PROC_MOUNTS, cgroupPids, parseCgroup2Mount } from '../../lib/cgroup.js';
import { UserError } from '../../lib/errors.js';
import { parseAddressOrCidr } from '../../lib/net/cidr.js';
import type { LabPlan } from './plan.js';

export const NETNS_DIR = '/var/run/netns';
export const STATE_DIR = '/run/clustermesh-lab';

export function netnsPath(netns: string): string {
  return join(NETNS_DIR, netns);
}

/** Runs a command to completion; rejects with one line naming the command and its stderr. */
export function run(command: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout!.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (err) =>
      reject(new UserError(`cannot run ${command}: ${err.message} (is it installed?)`)),
    );
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(stdout).toString());
      else {
        const detail = Buffer.concat(stderr)
          .toString()
          .trim()
          .replace(/\s*\n\s*/g, ' | ');
        reject(new Error(`${command} ${args.join(' ')} failed (exit ${code}): ${detail}`));
      }
    });
    if (input !== undefined) {
      child.stdin!.on('error', () => undefined); // a child that exits early reports itself through 'close'
      child.stdin!.end(input);
    }
  });
}

/** Runs `ip` commands (one per line, without the leading "ip") in one process, optionally in a netns. */
export async function ipBatch(commands: string[], netns?: string): Promise<void> {
  if (commands.length === 0) return;
  const netnsArgs = netns === undefined ? [] : ['-n', netns];
  await run('ip', [...netnsArgs, '-batch', '-'], commands.join('\n') + '\n');
}

/** Sets sysctls inside a namespace (`nsenter --net` keeps /proc/sys/net bound to that namespace). */
export async function sysctlIn(netns: string, settings: Record<string, string | number>): Promise<void> {
  const pairs = Object.entries(settings).map(([key, value]) => `${key}=${value}`);
  await run('nsenter', [`--net=${netnsPath(netns)}`, '--', 'sysctl', '-q', '-w', ...pairs]);
}

export function listNetns(): string[] {
  return existsSync(NETNS_DIR) ? readdirSync(NETNS_DIR).sort() : [];
}

/** Namespaces and cgroups of a lab are named `<prefix>-…` and `clustermesh-lab-<prefix>`. */
export function labNetns(prefix: string): string[] {
  return listNetns().filter((name) => name.startsWith(`${prefix}-`));
}

export interface ProcessInfo {
  pid: number;
  command: string;
}

/** The processes living in each of the given named namespaces (one pass over /proc). */
export function processesByNetns(namespaces: string[]): Map<string, ProcessInfo[]> {
  const byInode = new Map<number, string>();
  for (const name of namespaces) {
    try {
      byInode.set(statSync(netnsPath(name)).ino, name);
    } catch {
      // deleted since it was listed
    }
  }
  const result = new Map<string, ProcessInfo[]>(namespaces.map((n) => [n, []]));
  for (const pid of livePids()) {
    const match = /^net:\[(\d+)\]$/.exec(readlinkQuietly(`/proc/${pid}/ns/net`) ?? '');
    const netns = match ? byInode.get(Number(match[1])) : undefined;
    if (netns) result.get(netns)?.push({ pid, command: commandLine(pid) });
  }
  return result;
}

function livePids(): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => pid !== process.pid);
}

function readlinkQuietly(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined; // exited, or a zombie (no namespaces left)
  }
}

export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return '';
  }
}

/**
 * A process as the kernel tells one from another: its pid and its start time (clock ticks after
 * boot, /proc/<pid>/stat field 22). A pid alone is not enough to signal a process found in a file
 * written by an earlier run: when that run was killed, the kernel hands its pids to new processes
 * (pid_max is 32768 on these hosts, so they come round within hours).
 */
export interface ProcessIdentity {
  pid: number;
  startTime: string;
}

/** The identity of a living process; undefined when no process (or only a zombie) has that pid. */
export function processIdentity(pid: number): ProcessIdentity | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  return parseProcStat(pid, stat);
}

/** Parses /proc/<pid>/stat: the command may hold spaces and parentheses, so fields count from its last ')'. */
export function parseProcStat(pid: number, stat: string): ProcessIdentity | undefined {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so field 22 (starttime) is fields[19]
  const [state, startTime] = [fields[0], fields[19]];
  if (state === undefined || state === 'Z' || state === 'X' || !/^\d+$/.test(startTime ?? '')) return undefined;
  return { pid, startTime };
}

/** Whether the process `identity` names still runs (the same process, not one that got its pid since). */
export function isRunning(identity: ProcessIdentity): boolean {
  return processIdentity(identity.pid)?.startTime === identity.startTime;
}

/** Parses an identity written as "<pid> <startTime>"; undefined for anything else (a bare pid included). */
export function parseProcessIdentity(text: string): ProcessIdentity | undefined {
  const match = /^(\d+) (\d+)$/.exec(text.trim());
  return match && Number(match[1]) > 1 ? { pid: Number(match[1]), startTime: match[2] } : undefined;
}

export function formatProcessIdentity(identity: ProcessIdentity): string {
  return `${identity.pid} ${identity.startTime}`;
}

/** The cgroup v2 mount point; undefined if cgroup2 is not mounted. */
export function cgroup2Mount(): string | undefined {
  return parseCgroup2Mount(readFileSync(PROC_MOUNTS, 'utf8'));
}

/** Every process in a cgroup directory and below. */
export function cgroupProcesses(dir: string): ProcessInfo[] {
  if (!existsSync(dir)) return [];
  const own = cgroupPids(dir).map((pid) => ({ pid, command: commandLine(pid) }));
  return [...own, ...childDirs(dir).flatMap((child) => cgroupProcesses(child))];
}

function childDirs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => join(dir, entry.name));
}

/** Destinations of every host route and address (all tables, both families), for the overlap check. */
export async function readHostRoutes(): Promise<string[]> {
  const [v4, v6] = await Promise.all([
    run('ip', ['-j', '-4', 'route', 'show', 'table', 'all']),
    run('ip', ['-j', '-6', 'route', 'show', 'table', 'all']),
  ]);
  return [...JSON.parse(v4), ...JSON.parse(v6)]
    .map((route: { dst: string }) => route.dst)
    .filter((dst) => dst !== 'default' && parsesAsRange(dst));
}

function parsesAsRange(text: string): boolean {
  try {
    parseAddressOrCidr(text);
    return true;
  } catch {
    return false;
  }
}

/** Blackhole route destinations in the root namespace (both families). */
export async function hostBlackholes(): Promise<string[]> {
  const [v4, v6] = await Promise.all([
    run('ip', ['-j', '-4', 'route', 'show', 'type', 'blackhole']),
    run('ip', ['-j', '-6', 'route', 'show', 'type', 'blackhole']),
  ]);
  return [...JSON.parse(v4), ...JSON.parse(v6)].map((route: { dst: string }) => route.dst);
}

export function linkExists(name: string): boolean {
  return existsSync(join('/sys/class/net', name));
}

// --- state file ---------------------------------------------------------------------------------

function statePath(prefix: string): string {
  return join(STATE_DIR, `${prefix}.json`);
}

/**
 * The state file: the plan, and the process that built the lab (`builder`), so that a lab being
 * built is not taken for the leftovers of a crashed run (it has no processes of its own yet).
 */
type LabState = LabPlan & { builder?: ProcessIdentity };

export function writeState(plan: LabPlan): void {
  mkdirSync(STATE_DIR, { recursive: true });
  const state: LabState = { ...plan, builder: processIdentity(process.pid) };
  writeFileSync(statePath(plan.prefix), JSON.stringify(state, null, 2));
}

export function readState(prefix: string): LabPlan | undefined {
  const state = readStateFile(prefix);
  return state && withoutBuilder(state);
}

const withoutBuilder = ({ builder: _builder, ...plan }: LabState): LabPlan => plan;

/** The process that built lab `prefix` (it may have exited since: the CLI does, the lab runs on). */
export function readStateBuilder(prefix: string): ProcessIdentity | undefined {
  return readStateFile(prefix)?.builder;
}

function readStateFile(prefix: string): LabState | undefined {
  const path = statePath(prefix);
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as LabState) : undefined;
}

export function removeState(prefix: string): void {
  rmSync(statePath(prefix), { force: true });
  try {
    rmdirSync(STATE_DIR); // only once empty: another lab may be up
  } catch {
    // not empty, or already gone
  }
}

/** Prefixes of labs that have a state file (i.e. were brought up and not brought down). */
export function labsWithState(): string[] {
  if (!existsSync(STATE_DIR)) return [];
  return readdirSync(STATE_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -'.json'.length))
    .sort();
}

/** Polls a condition until it holds or the deadline passes (bounded; never a blind sleep). */
export async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
