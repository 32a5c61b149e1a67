/**
 * cgroup v2 helpers. The mount point differs between hosts (/sys/fs/cgroup on unified hosts,
 * /sys/fs/cgroup/unified on hybrid ones), so it is always read from the mount table.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';

export const PROC_MOUNTS = '/proc/mounts';

/** The cgroup2 mount point listed in a mounts table (fields: device mountpoint type ...). */
export function parseCgroup2Mount(mountsText: string): string | undefined {
  for (const line of mountsText.split('\n')) {
    const [, mountPoint, type] = line.split(' ');
    // /proc/mounts escapes spaces and other odd characters as octal (\040)
    if (type === 'cgroup2') return mountPoint.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
  }
  return undefined;
}

/** Throws "cgroup v2 not found" when no cgroup2 filesystem is mounted. */
export function findCgroup2Mount(mountsPath: string = PROC_MOUNTS): string {
  const mountPoint = parseCgroup2Mount(readFileSync(mountsPath, 'utf8'));
  if (!mountPoint) {
    throw new Error(`cgroup v2 not found: no cgroup2 entry in ${mountsPath}; mount one with \`mount -t cgroup2 none /sys/fs/cgroup\``);
  }
  return mountPoint;
}

function childPath(mountPoint: string, name: string): string {
  const dir = join(mountPoint, name);
  const rel = relative(mountPoint, dir);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) throw new Error(`cgroup name "${name}" must name a directory below ${mountPoint}`);
  return dir;
}

/** Creates (if needed) the cgroup `name` (may contain "/") below the cgroup2 mount; returns its directory. */
export function createCgroup(name: string, mountsPath: string = PROC_MOUNTS): string {
  const dir = childPath(findCgroup2Mount(mountsPath), name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Cgroupfs lists controller files and child cgroups; only the children are directories. */
function childCgroups(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name);
}

/** Pids currently in the cgroup (not its children). */
export function cgroupPids(dir: string): number[] {
  return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
}

/** Removes a cgroup and its child cgroups; the kernel refuses while processes are in them. */
export function removeCgroup(dir: string): void {
  if (!existsSync(dir)) return;
  for (const child of childCgroups(dir)) removeCgroup(join(dir, child));
  const pids = cgroupPids(dir);
  if (pids.length > 0) throw new Error(`cannot remove cgroup ${dir}: processes ${pids.join(', ')} are still in it; stop or move them first`);
  rmdirSync(dir);
}

/** Moves a process (and its future children) into the cgroup. */
export function moveToCgroup(dir: string, pid: number): void {
  writeFileSync(join(dir, 'cgroup.procs'), `${pid}\n`);
}

