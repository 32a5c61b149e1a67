/**
 * Addresses as Cilium (Go) reads and writes them in the kvstore: the canonical text of
 * lib/net/ip.ts and `net.IPNet` JSON (`{"IP":"10.1.0.0","Mask":"//8AAA=="}`, the mask as base64
 * bytes). IPv4-mapped IPv6 is refused here: Go's `net` and `netip` print it differently (as IPv4
 * or not), so no text of it is unambiguous on the wire.
 */

import { maskFromPrefixLength } from '../../lib/kvstore/codecs.js';
import {
  formatIp,
  ipv4Number,
  isIpv4Mapped,
  parseIp,
  parseIpPrefix,
  type IpFamily,
} from '../../lib/net/ip.js';

export interface WireIp {
  family: IpFamily;
  /** canonical text (lib/net/ip.ts) */
  text: string;
}

/**
 * An address a Go peer reads back as the same address, with its family; null otherwise. A dotted
 * quad the IPv4 grammar accepts is already canonical (no leading zeros, no other spelling), so it
 * is checked without allocating: the initial sync reads every endpoint and pod address through here.
 */
export function wireIp(text: string): WireIp | null {
  if (ipv4Number(text) >= 0) return { family: 4, text };
  const ip = parseIp(text);
  return ip && !isIpv4Mapped(ip.bytes) ? { family: ip.family, text: formatIp(ip.bytes) } : null;
}

/** The canonical text of an address, or `null` when it is not one the wire carries. */
export function canonicalWireIp(text: string): string | null {
  return wireIp(text)?.text ?? null;
}

/** Cilium's `cidr.CIDR` JSON form (Go `net.IPNet`): network address as text, mask as base64 bytes. */
export interface IPNetJSON {
  IP: string;
  Mask: string;
}

export interface ParsedCIDR {
  family: IpFamily;
  json: IPNetJSON;
}

/** Parses `addr/len` the way Go's `net.ParseCIDR` does (host bits cleared); `null` when invalid. */
export function parseCIDR(text: string): ParsedCIDR | null {
  const parsed = parseIpPrefix(text);
  if (!parsed || isIpv4Mapped(parsed.ip.bytes)) return null;
  const { family, bytes } = parsed.ip;
  const mask = maskFromPrefixLength(parsed.prefix, family);
  const maskBytes = Buffer.from(mask, 'base64');
  const network = bytes.map((b, i) => b & maskBytes[i]);
  return { family, json: { IP: formatIp(network), Mask: mask } };
}
