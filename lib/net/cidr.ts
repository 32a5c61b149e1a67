/**
 * CIDR arithmetic on integer addresses (address plans, route validation, longest-prefix lookups).
 * Addresses and prefix lengths follow the grammar of ./ip.ts; bad input throws one UserError line.
 */
import { UserError } from '../errors.js';
import { bigintToIp, familyBits, formatIp, ipToBigint, parseIp, parseIpPrefix, type IpFamily } from './ip.js';

export interface Cidr {
  family: IpFamily;
  /** the network address as an integer (host bits zero) */
  network: bigint;
  prefix: number;
}

/** An address as its family and integer value; throws a one-line UserError when it is not one. */
export function parseIpValue(text: string): { family: IpFamily; value: bigint } {
  const ip = parseIp(text);
  if (!ip) throw new UserError(`"${text}" is not an IP address: write e.g. 10.99.0.1 or fd99::1`);
  return { family: ip.family, value: ipToBigint(ip.bytes) };
}

export function formatIpValue(family: IpFamily, value: bigint): string {
  return formatIp(bigintToIp(family, value));
}

/** Parses "a.b.c.d/n" or "x::/n"; host bits must be zero (a route or range, not an address). */
export function parseCidr(text: string): Cidr {
  const parsed = parseIpPrefix(text);
  if (!parsed) throw new UserError(`"${text}" is not a CIDR: write e.g. 10.101.0.0/16 or fd99:101::/48`);
  const address = ipToBigint(parsed.ip.bytes);
  const cidr = { family: parsed.ip.family, network: address, prefix: parsed.prefix };
  if ((address & hostMask(cidr)) !== 0n) {
    const network = formatCidr({ ...cidr, network: address & ~hostMask(cidr) });
    throw new UserError(`"${text}" has host bits set: did you mean ${network}?`);
  }
  return cidr;
}

/** An address or a CIDR: a bare address is its own /32 or /128. */
export function parseAddressOrCidr(text: string): Cidr {
  if (text.includes('/')) return parseCidr(text);
  const { family, value } = parseIpValue(text);
  return { family, network: value, prefix: familyBits(family) };
}

/** "a/n,b/m" (spaces and empty items ignored, e.g. a flag's value) → the CIDRs in canonical text. */
export function parseCidrList(text: string): string[] {
  return text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '')
    .map((item) => formatCidr(parseCidr(item)));
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIpValue(cidr.family, cidr.network)}/${cidr.prefix}`;
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
  const parsed = parseIpValue(ip);
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
  return formatIpValue(cidr.family, cidr.network + offset);
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
