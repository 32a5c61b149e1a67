/**
 * What of a lab exists on this host right now (for `clustermesh lab status`): found from the
 * kernel and the state file, never from memory, so it also shows leftovers of a crashed run.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import {
  type ProcessInfo,
  cgroup2Mount,
  cgroupProcesses,
  hostBlackholes,
  labNetns,
  labsWithState,
  linkExists,
  listNetns,
  processesByNetns,
  readState,
} from './host.js';
import { LAB_PREFIX_PATTERN, hostDeviceName, labCgroupRoot } from './plan.js';

export interface NamespaceStatus {
  name: string;
  kind: 'bridge' | 'node' | 'pod';
  processes: ProcessInfo[];
}

export interface LabStatus {
  prefix: string;
  /** `up` ran and `down` has not (the state file exists) */
  up: boolean;
  hostDevice: boolean;
  namespaces: NamespaceStatus[];
  /** the lab's root-namespace blackholes that are in place */
  blackholes: string[];
  cgroups: Array<{ dir: string; processes: ProcessInfo[] }>;
}

export async function labStatus(prefix: string): Promise<LabStatus> {
  const plan = readState(prefix);
  const namespaces = labNetns(prefix);
  const processes = processesByNetns(namespaces);
  const nodeNetns = new Set(plan?.nodes.map((n) => n.netns));
  const present = new Set(await hostBlackholes());
  const mount = cgroup2Mount();
  const cgroupRoot = mount ? join(mount, labCgroupRoot(prefix)) : undefined;
  return {
    prefix,
    up: plan !== undefined,
    hostDevice: linkExists(hostDeviceName(prefix)),
    namespaces: namespaces.map((name) => ({
      name,
      kind: name === plan?.bridge.netns ? 'bridge' : nodeNetns.has(name) ? 'node' : 'pod',
      processes: processes.get(name) ?? [],
    })),
    blackholes: (plan?.hostBlackholes ?? []).map((r) => r.destination).filter((d) => present.has(d)),
    cgroups:
      cgroupRoot && existsSync(cgroupRoot)
        ? (plan?.nodes ?? [])
            .filter((n) => n.cgroup !== undefined)
            .map((n) => join(mount!, n.cgroup!))
            .filter((dir) => existsSync(dir))
            .map((dir) => ({ dir, processes: cgroupProcesses(dir) }))
        : [],
  };
}

/** True when nothing of the lab is left on the host. */
export function isGone(status: LabStatus): boolean {
  return (
    !status.up &&
    !status.hostDevice &&
    status.namespaces.length === 0 &&
    status.blackholes.length === 0 &&
    status.cgroups.length === 0
  );
}

/** Labs with a state file or namespaces on this host (prefixes). */
export function listLabs(): string[] {
  const fromNetns = listNetns()
    .filter((name) => name.endsWith('-bridge'))
    .map((name) => name.slice(0, -'-bridge'.length))
    .filter((prefix) => LAB_PREFIX_PATTERN.test(prefix)); // not a pod that happens to be named "bridge"
  return [...new Set([...labsWithState(), ...fromNetns])].sort();
}

/** Human-readable status, one line per namespace and cgroup. */
export function formatStatus(status: LabStatus): string {
  if (isGone(status)) return `lab ${status.prefix}: down (nothing left on this host)`;
  const lines = [
    `lab ${status.prefix}: ${status.up ? 'up' : 'LEFTOVERS of a crashed run (clustermesh lab down removes them)'}`,
    `  host veth ${hostDeviceName(status.prefix)}: ${status.hostDevice ? 'present' : 'missing'}; blackholes: ${status.blackholes.join(' ') || 'none'}`,
  ];
  for (const ns of status.namespaces) {
    const commands = ns.processes.map((p) => `${p.pid} ${p.command.slice(0, 60)}`);
    lines.push(
      `  ${ns.kind.padEnd(6)} ${ns.name}: ${ns.processes.length} processes${commands.length ? ` (${commands.join('; ')})` : ''}`,
    );
  }
  for (const cgroup of status.cgroups)
    lines.push(`  cgroup ${cgroup.dir}: ${cgroup.processes.length} processes`);
  return lines.join('\n');
}
