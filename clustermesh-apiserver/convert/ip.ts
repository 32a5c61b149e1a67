/**
 * IP parsing and formatting that matches what Cilium (Go) writes: canonical text (lowercase,
 * RFC 5952 zero compression) and `net.IPNet` JSON (`{"IP":"10.1.0.0","Mask":"//8AAA=="}`, the
 * mask as base64 bytes). Strict: no zones, no leading zeros, no IPv4-mapped IPv6 (Go's `net` and
 * `netip` print those differently, so no form of them is unambiguous on the wire).
 */

import { maskFromPrefixLength } from '../../lib/kvstore/codecs.js';

export type IPFamily = 4 | 6;

export interface ParsedIP {
  family: IPFamily;
  /** 4 or 16 bytes */
  bytes: Uint8Array;
}

const IPV4_OCTET = /^(0|[1-9][0-9]{0,2})$/;
const IPV6_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseIPv4(text: string): Uint8Array | null {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => IPV4_OCTET.test(p))) return null;
  const octets = parts.map(Number);
  return octets.every((o) => o <= 255) ? Uint8Array.from(octets) : null;
}

/** The 16-bit groups of one side of a `::`, with an IPv4 tail expanded into two groups. */
function parseIPv6Groups(text: string, allowIPv4Tail: boolean): number[] | null {
  if (text === '') return [];
  const parts = text.split(':');
  const groups: number[] = [];
  for (const [index, part] of parts.entries()) {
    if (allowIPv4Tail && index === parts.length - 1 && part.includes('.')) {
      const v4 = parseIPv4(part);
      if (!v4) return null;
      groups.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    } else if (IPV6_GROUP.test(part)) {
      groups.push(parseInt(part, 16));
    } else {
      return null;
    }
  }
  return groups;
}

function parseIPv6(text: string): Uint8Array | null {
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const head = parseIPv6Groups(halves[0], halves.length === 1);
  const tail = halves.length === 2 ? parseIPv6Groups(halves[1], true) : [];
  if (!head || !tail) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}

function isIPv4Mapped(bytes: Uint8Array): boolean {
  return (
    bytes.length === 16 &&
    bytes.subarray(0, 10).every((b) => b === 0) &&
    bytes[10] === 0xff &&
    bytes[11] === 0xff
  );
}

/** Parses an IP address; `null` when it is not one this project accepts (see the module note). */
export function parseIP(text: string): ParsedIP | null {
  if (text.includes(':')) {
    const bytes = parseIPv6(text);
    return bytes && !isIPv4Mapped(bytes) ? { family: 6, bytes } : null;
  }
  const bytes = parseIPv4(text);
  return bytes ? { family: 4, bytes } : null;
}

/** The longest run (≥ 2) of zero groups, the first one on a tie: RFC 5952 §4.2. */
function longestZeroRun(groups: number[]): { start: number; length: number } {
  let best = { start: -1, length: 0 };
  let start = -1;
  groups.forEach((g, i) => {
    if (g === 0 && start < 0) start = i;
    const runEnds = start >= 0 && (g !== 0 || i === groups.length - 1);
    if (runEnds) {
      const length = (g === 0 ? i + 1 : i) - start;
      if (length > best.length) best = { start, length };
      start = -1;
    }
  });
  return best.length >= 2 ? best : { start: -1, length: 0 };
}

export function formatIP(ip: ParsedIP): string {
  if (ip.family === 4) return Array.from(ip.bytes).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => (ip.bytes[2 * i] << 8) | ip.bytes[2 * i + 1]);
  const run = longestZeroRun(groups);
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (run.start < 0) return hex(groups);
  return `${hex(groups.slice(0, run.start))}::${hex(groups.slice(run.start + run.length))}`;
}

/** The canonical text of an address, or `null` when it does not parse. */
export function canonicalIP(text: string): string | null {
  const ip = parseIP(text);
  return ip ? formatIP(ip) : null;
}

/** Cilium's `cidr.CIDR` JSON form (Go `net.IPNet`): network address as text, mask as base64 bytes. */
export interface IPNetJSON {
  IP: string;
  Mask: string;
}

export interface ParsedCIDR {
  family: IPFamily;
  json: IPNetJSON;
}

/** Parses `addr/len` the way Go's `net.ParseCIDR` does (host bits cleared); `null` when invalid. */
export function parseCIDR(text: string): ParsedCIDR | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const ip = parseIP(text.slice(0, slash));
  const lengthText = text.slice(slash + 1);
  if (!ip || !/^(0|[1-9][0-9]{0,2})$/.test(lengthText)) return null;
  const prefixLength = Number(lengthText);
  if (prefixLength > ip.bytes.length * 8) return null;
  const mask = maskFromPrefixLength(prefixLength, ip.family);
  const maskBytes = Buffer.from(mask, 'base64');
  const network = ip.bytes.map((b, i) => b & maskBytes[i]);
  return { family: ip.family, json: { IP: formatIP({ family: ip.family, bytes: network }), Mask: mask } };
}
