/**
 * A container's filesystem view without a container image: the host's, in a mount namespace of
 * its own (`unshare --mount --propagation slave`), with each volume bind-mounted at its mountPath.
 * A mountPath whose directory does not exist on the host (e.g. /var/run/secrets/...) is made in an
 * overlay over its nearest existing parent, inside the container's namespace only, so nothing is
 * ever created on the host. Pure: the script is built here, run by lab/kubelet/runtime.ts.
 */
import { posix } from 'node:path';

export interface MountRequest {
  /** a host path: a volume's directory (or a file in it, for subPath), a hostPath, the built tree */
  source: string;
  target: string;
  readOnly: boolean;
  /** the source is a file (bind onto a file) */
  file: boolean;
}

export interface HostView {
  exists(path: string): boolean;
  /** the path with symlinks resolved (it exists) */
  realpath(path: string): string;
}

export interface MountPlan {
  mounts: MountRequest[];
  /** host directories covered by an overlay in the container's namespace (none nested) */
  overlays: string[];
}

export type Resolved<T> = { ok: true; value: T } | { ok: false; message: string };

/** Parents an overlay must never cover: the root (it would hide /proc, /sys, /dev) and the kernel's filesystems. */
function overlayForbidden(dir: string): boolean {
  return dir === '/' || /^\/(proc|sys|dev)(\/|$)/.test(dir);
}

function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/** Where each target lands (with its existing parent resolved) and which overlays are needed. */
export function planMounts(requests: MountRequest[], host: HostView): Resolved<MountPlan> {
  const mounts: MountRequest[] = [];
  const needed: string[] = [];
  for (const request of requests) {
    if (!posix.isAbsolute(request.target)) return { ok: false, message: `mountPath ${request.target} is not absolute` };
    const target = posix.normalize(request.target);
    let parent = target;
    while (!host.exists(parent)) parent = posix.dirname(parent);
    const realParent = host.realpath(parent);
    const resolved = posix.join(realParent, posix.relative(parent, target));
    if (parent !== target) {
      if (overlayForbidden(realParent)) {
        return {
          ok: false,
          message: `mountPath ${request.target} does not exist on this host and cannot be made under ${realParent}: use a path whose parent directory exists`,
        };
      }
      needed.push(realParent);
    }
    mounts.push({ ...request, target: resolved });
  }
  const overlays = [...new Set(needed)].filter((dir, _, all) => !all.some((other) => other !== dir && isUnder(dir, other)));
  // parents before children, as a runtime mounts them
  mounts.sort((a, b) => a.target.split('/').length - b.target.split('/').length);
  return { ok: true, value: { mounts, overlays } };
}

export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The script run by `sh -ec` in the new mount namespace, before `exec "$@"`. `scratch` is an
 * existing empty directory: a tmpfs there (in this namespace only) stages every source first
 * (a source may lie under an overlaid directory) and holds the overlays' upper layers.
 */
export function mountScript(plan: MountPlan, scratch: string, workingDir: string): string {
  const q = shellQuote;
  const lines = [`mount -t tmpfs -o mode=0700 lab-kubelet ${q(scratch)}`];
  plan.mounts.forEach((m, i) => {
    const staged = `${scratch}/s${i}`;
    lines.push(`${m.file ? 'touch' : 'mkdir'} ${q(staged)}`, `mount --rbind ${q(m.source)} ${q(staged)}`);
  });
  const merged = (i: number) => `${scratch}/o${i}/merged`;
  plan.overlays.forEach((dir, i) => {
    const o = `${scratch}/o${i}`;
    lines.push(
      `mkdir -p ${q(`${o}/upper`)} ${q(`${o}/work`)} ${q(merged(i))}`,
      `mount -t overlay lab-kubelet -o ${q(`lowerdir=${dir},upperdir=${o}/upper,workdir=${o}/work`)} ${q(merged(i))}`,
    );
  });
  plan.mounts.forEach((m, i) => {
    const overlay = plan.overlays.findIndex((dir) => isUnder(m.target, dir));
    const where = overlay < 0 ? m.target : posix.join(merged(overlay), posix.relative(plan.overlays[overlay], m.target));
    lines.push(
      m.file ? `[ -e ${q(where)} ] || { mkdir -p ${q(posix.dirname(where))} && touch ${q(where)}; }` : `mkdir -p ${q(where)}`,
      `mount --rbind ${q(`${scratch}/s${i}`)} ${q(where)}`,
    );
    if (m.readOnly) lines.push(`mount -o remount,bind,ro ${q(where)}`);
  });
  // An overlay over a parent of `scratch` (e.g. /run) hides the other overlays' merged dirs: it moves last.
  const moves = plan.overlays.map((dir, i) => ({ dir, i })).sort((a, b) => Number(isUnder(scratch, a.dir)) - Number(isUnder(scratch, b.dir)));
  for (const { dir, i } of moves) lines.push(`mount --move ${q(merged(i))} ${q(dir)}`);
  lines.push(`cd ${q(workingDir)}`, 'exec "$@"');
  return lines.join('\n');
}
