/**
 * Routes in a network namespace through `ip route`. The agent installs cross-cluster pod-CIDR
 * routes with these (in its own netns, or another one named with `netns`); the lab its own.
 * Addresses and CIDRs are read with lib/net.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { UserError } from './errors.js';
import { formatCidr, parseAddressOrCidr } from './net/cidr.js';
import { ipFamily, type IpFamily } from './net/ip.js';

const execFileAsync = promisify(execFile);

export interface RouteSpec {
  /** a CIDR ("10.102.0.0/16") or a single address; never a default route */
  destination: string;
  /** next hop, same family as the destination (unicast routes) */
  via?: string;
  /** output interface */
  device?: string;
  /** blackhole and unreachable routes take neither `via` nor `device` */
  type?: 'unicast' | 'blackhole' | 'unreachable';
  /** next hop reachable on `device` even without a matching connected route */
  onlink?: boolean;
  metric?: number;
}

export type RouteOperation = 'add' | 'replace' | 'delete';

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

/** The `ip route` arguments for an operation (pure; throws a one-line UserError on a bad route). */
export function routeArgs(operation: RouteOperation, route: RouteSpec): string[] {
  const destination = parseAddressOrCidr(route.destination);
  if (destination.prefix === 0) {
    throw new UserError(
      `refusing to route ${route.destination}: a default route could send traffic out of the host uplink`,
    );
  }
  const type = route.type ?? 'unicast';
  const args = ['route', operation === 'delete' ? 'del' : operation];
  args.push(...(type === 'unicast' ? [] : [type]), formatCidr(destination));
  if (type !== 'unicast') {
    if (route.via !== undefined || route.device !== undefined) {
      throw new UserError(`a ${type} route to ${route.destination} takes no "via" or "device"`);
    }
  } else {
    args.push(...unicastNextHopArgs(route, destination.family, operation));
  }
  if (route.metric !== undefined) {
    if (!Number.isInteger(route.metric) || route.metric < 0 || route.metric > 0xffffffff) {
      throw new UserError(`route metric ${route.metric} is not an integer in 0..4294967295`);
    }
    args.push('metric', String(route.metric));
  }
  return args;
}

function unicastNextHopArgs(route: RouteSpec, family: IpFamily, operation: RouteOperation): string[] {
  const args: string[] = [];
  if (route.via !== undefined) {
    if (ipFamily(route.via) !== family) {
      throw new UserError(
        `next hop "${route.via}" is not an IPv${family} address like the destination ${route.destination}`,
      );
    }
    args.push('via', route.via);
  }
  if (route.device !== undefined) {
    if (!IFNAME.test(route.device)) {
      throw new UserError(`"${route.device}" is not an interface name (1-15 of A-Z a-z 0-9 _ . -)`);
    }
    args.push('dev', route.device);
  }
  if (args.length === 0 && operation !== 'delete') {
    throw new UserError(`a route to ${route.destination} needs "via" or "device"`);
  }
  if (route.onlink) args.push('onlink');
  return args;
}

export interface RouteTarget {
  /** a named network namespace (`ip -n`); absent = the current one */
  netns?: string;
}

async function runIpRoute(operation: RouteOperation, route: RouteSpec, target: RouteTarget): Promise<void> {
  const args = routeArgs(operation, route);
  const netnsArgs = target.netns === undefined ? [] : ['-n', target.netns];
  await execFileAsync('ip', [...netnsArgs, ...args]);
}

export async function addRoute(route: RouteSpec, target: RouteTarget = {}): Promise<void> {
  await runIpRoute('add', route, target);
}

/** Adds the route or changes an existing one to the same destination (idempotent). */
export async function replaceRoute(route: RouteSpec, target: RouteTarget = {}): Promise<void> {
  await runIpRoute('replace', route, target);
}

/** Deletes the route; false if there was none (idempotent). */
export async function deleteRoute(route: RouteSpec, target: RouteTarget = {}): Promise<boolean> {
  try {
    await runIpRoute('delete', route, target);
    return true;
  } catch (err) {
    if (/No such process|not found/i.test(String((err as { stderr?: string }).stderr))) return false;
    throw err;
  }
}
