/**
 * The one IP address grammar of the project: text → bytes, bytes → canonical text, families.
 *
 * What is an address here (decided once; every parser in the project uses these rules):
 * - IPv4: exactly four decimal octets 0..255 without leading zeros ("010.1.2.3" is refused: C's
 *   inet_aton would read it as octal, Go and Node refuse it).
 * - IPv6: RFC 4291 text: 1..4 hex digits per group (either case), at most one "::" standing for
 *   at least one zero group, optionally a dotted IPv4 tail (whose octets follow the IPv4 rule).
 * - Zones ("fe80::1%eth0") are refused: nothing here routes or keys on link-local scopes.
 * - IPv4-mapped IPv6 ("::ffff:10.0.0.1") is the IPv6 address it spells, never folded into IPv4,
 *   and prints in hex ("::ffff:a00:1"). Where Go peers read the text (the Cilium kvstore) it is
 *   ambiguous, so that boundary refuses it with `isIpv4Mapped`.
 * - Canonical text is RFC 5952: lower case, no leading zeros, the longest run (first on a tie) of
 *   two or more zero groups as "::". Equal addresses have equal canonical text.
 */

export type IpFamily = 4 | 6;

export interface ParsedIp {
  family: IpFamily;
  /** network order: 4 bytes (IPv4) or 16 (IPv6) */
  bytes: Uint8Array;
}

const FAMILY_BITS: Record<IpFamily, number> = { 4: 32, 6: 128 };

export function familyBits(family: IpFamily): number {
  return FAMILY_BITS[family];
}

const DOT = 46;
const ZERO = 48;

/**
 * A dotted quad as a 32-bit number (the address read big-endian), or -1. A character scan that
 * allocates nothing: the datapath parses every backend address it has not seen through here.
 */
export function ipv4Number(text: string): number {
  let value = 0;
  let octets = 0;
  let octet = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : DOT;
    if (c === DOT) {
      if (digits === 0 || octets > 3) return -1;
      value = value * 256 + octet;
      octets++;
      octet = 0;
      digits = 0;
      continue;
    }
    const d = c - ZERO;
    if (octets > 3 || d < 0 || d > 9 || (digits > 0 && octet === 0) || octet * 10 + d > 255) return -1;
    octet = octet * 10 + d;
    digits++;
  }
  return octets === 4 ? value : -1;
}

/** A dotted quad's bytes, or null (the grammar of ipv4Number). */
export function parseIpv4(text: string): Uint8Array | null {
  const n = ipv4Number(text);
  if (n < 0) return null;
  const bytes = new Uint8Array(4);
  bytes[0] = n >>> 24;
  bytes[1] = (n >>> 16) & 255;
  bytes[2] = (n >>> 8) & 255;
  bytes[3] = n & 255;
  return bytes;
}

const IPV6_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** The 16-bit groups of one side of a "::", with an IPv4 tail expanded into two groups. */
function parseIpv6Groups(text: string, allowIpv4Tail: boolean): number[] | null {
  if (text === '') return [];
  const parts = text.split(':');
  const groups: number[] = [];
  for (const [index, part] of parts.entries()) {
    if (allowIpv4Tail && index === parts.length - 1 && part.includes('.')) {
      const v4 = parseIpv4(part);
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

function parseIpv6(text: string): Uint8Array | null {
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const head = parseIpv6Groups(halves[0], halves.length === 1);
  const tail = halves.length === 2 ? parseIpv6Groups(halves[1], true) : [];
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

/** Parses an address by the rules of the module note; null when it is not one. */
export function parseIp(text: string): ParsedIp | null {
  if (text.includes(':')) {
    const bytes = parseIpv6(text);
    return bytes ? { family: 6, bytes } : null;
  }
  const bytes = parseIpv4(text);
  return bytes ? { family: 4, bytes } : null;
}

/** parseIp for input that must be an address: throws one line naming `what`. */
export function requireIp(text: string, what: string): ParsedIp {
  const ip = parseIp(text);
  if (!ip) throw new Error(`${what}: "${text}" is not an IPv4 or IPv6 address`);
  return ip;
}

export function isIpAddress(text: string): boolean {
  return parseIp(text) !== null;
}

export function ipFamily(text: string): IpFamily | undefined {
  return parseIp(text)?.family;
}

export function isIpv4Mapped(bytes: Uint8Array): boolean {
  return bytes.length === 16 && bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
}

/** The longest run (≥ 2) of zero groups, the first one on a tie: RFC 5952 §4.2. */
function longestZeroRun(groups: number[]): { start: number; length: number } {
  let best = { start: -1, length: 1 };
  for (let i = 0; i < groups.length; ) {
    let j = i;
    while (j < groups.length && groups[j] === 0) j++;
    if (j - i > best.length) best = { start: i, length: j - i };
    i = j === i ? i + 1 : j;
  }
  return best;
}

/** Canonical text of 4 or 16 network-order bytes (see the module note). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => (bytes[2 * i] << 8) | bytes[2 * i + 1]);
  const run = longestZeroRun(groups);
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (run.start < 0) return hex(groups);
  return `${hex(groups.slice(0, run.start))}::${hex(groups.slice(run.start + run.length))}`;
}

/** The canonical text of an address, or null when it does not parse. */
export function canonicalIp(text: string): string | null {
  const ip = parseIp(text);
  return ip ? formatIp(ip.bytes) : null;
}

/** The address as an unsigned integer (for range arithmetic). */
export function ipToBigint(bytes: Uint8Array): bigint {
  // 64 bits at a time: one BigInt per byte made this the cost of every range check on import.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length === 4) return BigInt(view.getUint32(0));
  return (view.getBigUint64(0) << 64n) | view.getBigUint64(8);
}

/** The network-order bytes of an address's integer value. */
export function bigintToIp(family: IpFamily, value: bigint): Uint8Array {
  const bytes = new Uint8Array(familyBits(family) / 8);
  for (let i = bytes.length - 1, v = value; i >= 0; i--, v >>= 8n) bytes[i] = Number(v & 0xffn);
  return bytes;
}

const PREFIX_LENGTH = /^(0|[1-9][0-9]{0,2})$/;

/** "address/length" split and checked (length in decimal without leading zeros); null when invalid. */
export function parseIpPrefix(text: string): { ip: ParsedIp; prefix: number } | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const ip = parseIp(text.slice(0, slash));
  const lengthText = text.slice(slash + 1);
  if (!ip || !PREFIX_LENGTH.test(lengthText)) return null;
  const prefix = Number(lengthText);
  return prefix <= familyBits(ip.family) ? { ip, prefix } : null;
}
