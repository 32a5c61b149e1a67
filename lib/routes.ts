/**
 * Routes in a network namespace through `ip route`, and the CIDR arithmetic to validate them.
 * The agent installs cross-cluster pod-CIDR routes with these (in its own netns, or another one
 * named with `netns`); the lab uses the same CIDR helpers for its address plan.
 */
import { execFile } from 'node:child_process';
import { isIPv4, isIPv6 } from 'node:net';
import { promisify } from 'node:util';
import { UserError } from './errors.js';

const execFileAsync = promisify(execFile);

export type IpFamily = 4 | 6;

export interface Cidr {
  family: IpFamily;
  /** the network address as an integer (host bits zero) */
  network: bigint;
  prefix: number;
}

const FAMILY_BITS: Record<IpFamily, number> = { 4: 32, 6: 128 };

export function familyBits(family: IpFamily): number {
  return FAMILY_BITS[family];
}

export function ipFamily(text: string): IpFamily | undefined {
  if (isIPv4(text)) return 4;
  if (isIPv6(text)) return 6;
  return undefined;
}

/** Parses an IPv4 or IPv6 address into its integer value; throws a one-line UserError otherwise. */
export function parseIp(text: string): { family: IpFamily; value: bigint } {
  const family = ipFamily(text);
  if (family === 4) return { family, value: ipv4ToBigint(text) };
  if (family === 6) return { family, value: ipv6ToBigint(text) };
  throw new UserError(`"${text}" is not an IP address: write e.g. 10.99.0.1 or fd99::1`);
}

function ipv4ToBigint(text: string): bigint {
  return text.split('.').reduce((acc, octet) => (acc << 8n) | BigInt(Number(octet)), 0n);
}

function ipv6ToBigint(text: string): bigint {
  const withoutDottedTail = text.replace(/(\d+\.\d+\.\d+\.\d+)$/, (quad) => {
    const v = ipv4ToBigint(quad);
    return `${(v >> 16n).toString(16)}:${(v & 0xffffn).toString(16)}`;
  });
  const [head, tail] = withoutDottedTail.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups =
    tail === undefined ? headGroups : [...headGroups, ...Array(missing).fill('0'), ...tailGroups];
  return groups.reduce((acc, group) => (acc << 16n) | BigInt(parseInt(group, 16)), 0n);
}

export function formatIp(family: IpFamily, value: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join('.');
  }
  const groups = Array.from({ length: 8 }, (_, i) =>
    ((value >> BigInt(112 - 16 * i)) & 0xffffn).toString(16),
  );
  return compressIpv6(groups);
}

/** RFC 5952: the longest run (≥2) of zero groups becomes "::". */
function compressIpv6(groups: string[]): string {
  let best = { start: -1, length: 0 };
  for (let i = 0; i < groups.length;) {
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > best.length) best = { start: i, length: j - i };
    i = j === i ? i + 1 : j;
  }
  if (best.length < 2) return groups.join(':');
  const head = groups.slice(0, best.start).join(':');
  const tail = groups.slice(best.start + best.length).join(':');
  return `${head}::${tail}`;
}

/** Parses "a.b.c.d/n" or "x::/n"; host bits must be zero (a route or range, not an address). */
export function parseCidr(text: string): Cidr {
  const [address, prefixText, extra] = text.split('/');
  const parsed = ipFamily(address) === undefined ? undefined : parseIp(address);
  const prefix = Number(prefixText);
  if (
    !parsed ||
    extra !== undefined ||
    !/^\d{1,3}$/.test(prefixText ?? '') ||
    prefix > familyBits(parsed.family)
  ) {
    throw new UserError(`"${text}" is not a CIDR: write e.g. 10.101.0.0/16 or fd99:101::/48`);
  }
  const cidr = { family: parsed.family, network: parsed.value, prefix };
  if ((parsed.value & hostMask(cidr)) !== 0n) {
    const network = formatCidr({ ...cidr, network: parsed.value & ~hostMask(cidr) });
    throw new UserError(`"${text}" has host bits set: did you mean ${network}?`);
  }
  return cidr;
}

/** An address or a CIDR: a bare address is its own /32 or /128. */
export function parseAddressOrCidr(text: string): Cidr {
  if (text.includes('/')) return parseCidr(text);
  const { family, value } = parseIp(text);
  return { family, network: value, prefix: familyBits(family) };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIp(cidr.family, cidr.network)}/${cidr.prefix}`;
}

function hostMask(cidr: Cidr): bigint {
  return (1n << BigInt(familyBits(cidr.family) - cidr.prefix)) - 1n;
}

export function cidrSize(cidr: Cidr): bigint {
  return hostMask(cidr) + 1n;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const shorter = Math.min(a.prefix, b.prefix);
  const mask = ~hostMask({ ...a, prefix: shorter });
  return (a.network & mask) === (b.network & mask);
}

export function cidrContainsIp(cidr: Cidr, ip: string): boolean {
  const parsed = parseIp(ip);
  return (
    parsed.family === cidr.family &&
    cidrsOverlap(cidr, { ...cidr, network: parsed.value, prefix: familyBits(cidr.family) })
  );
}

/** The n-th address of a range (0 = the network address). */
export function nthAddress(cidr: Cidr, n: bigint | number): string {
  const offset = BigInt(n);
  if (offset < 0n || offset >= cidrSize(cidr)) {
    throw new UserError(`${formatCidr(cidr)} has no address number ${offset}: use a larger range`);
  }
  return formatIp(cidr.family, cidr.network + offset);
}

/** The n-th sub-range of length `prefix` inside `cidr`. */
export function nthSubnet(cidr: Cidr, prefix: number, n: number): Cidr {
  const count = prefix < cidr.prefix ? 0n : 1n << BigInt(prefix - cidr.prefix);
  if (prefix > familyBits(cidr.family) || BigInt(n) >= count || n < 0) {
    throw new UserError(`${formatCidr(cidr)} has no /${prefix} number ${n}: use a larger range`);
  }
  const subnetSize = 1n << BigInt(familyBits(cidr.family) - prefix);
  return { family: cidr.family, network: cidr.network + BigInt(n) * subnetSize, prefix };
}

// --- routes ---------------------------------------------------------------------------------

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
