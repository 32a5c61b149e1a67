/** IP text <-> network-order bytes, with one canonical text per address (so IDs key on it). */
import { isIPv4, isIPv6 } from 'node:net';

export type IpFamily = 4 | 6;

export interface ParsedIp {
  family: IpFamily;
  bytes: Uint8Array;
}

function ipv4Bytes(text: string): Uint8Array {
  return Uint8Array.from(text.split('.').map(Number));
}

function ipv6Bytes(text: string): Uint8Array {
  let head = text;
  const words: number[] = [];
  const dotted = text.lastIndexOf('.') > text.lastIndexOf(':') ? text.slice(text.lastIndexOf(':') + 1) : '';
  if (dotted) {
    const v4 = ipv4Bytes(dotted);
    head = text.slice(0, text.length - dotted.length) + `${((v4[0] << 8) | v4[1]).toString(16)}:${((v4[2] << 8) | v4[3]).toString(16)}`;
  }
  const [left, right] = head.split('::');
  const leftWords = left ? left.split(':') : [];
  const rightWords = right !== undefined && right !== '' ? right.split(':') : [];
  const zeros = right === undefined ? 0 : 8 - leftWords.length - rightWords.length;
  for (const w of leftWords) words.push(parseInt(w, 16));
  for (let i = 0; i < zeros; i++) words.push(0);
  for (const w of rightWords) words.push(parseInt(w, 16));
  const bytes = new Uint8Array(16);
  words.forEach((w, i) => {
    bytes[2 * i] = w >> 8;
    bytes[2 * i + 1] = w & 0xff;
  });
  return bytes;
}

/** Throws a one-line error naming `what` when `text` is not an IPv4 or IPv6 address. */
export function parseIp(text: string, what: string): ParsedIp {
  if (isIPv4(text)) return { family: 4, bytes: ipv4Bytes(text) };
  if (isIPv6(text) && !text.includes('%')) return { family: 6, bytes: ipv6Bytes(text) };
  throw new Error(`${what}: "${text}" is not an IPv4 or IPv6 address`);
}

export interface CanonicalIp extends ParsedIp {
  text: string;
}

// Other texts (IPv6, odd IPv4 spellings) are parsed once each (bounded memo).
const MEMO_LIMIT = 1_000_000;
const canonical = new Map<string, CanonicalIp>();

const DOT = 46;
const ZERO = 48;

/** A dotted quad without leading zeros is its own canonical text: parse it without the memo. */
function canonicalIpv4(text: string): CanonicalIp | undefined {
  const bytes = new Uint8Array(4);
  let octet = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : DOT;
    if (c === DOT) {
      if (digits === 0 || octet > 3) return undefined;
      octet++;
      digits = 0;
      continue;
    }
    const d = c - ZERO;
    if (octet > 3 || d < 0 || d > 9 || (digits > 0 && bytes[octet] === 0) || bytes[octet] * 10 + d > 255) return undefined;
    bytes[octet] = bytes[octet] * 10 + d;
    digits++;
  }
  return octet === 4 ? { family: 4, bytes, text } : undefined;
}

/** parseIp plus the canonical text, memoized. */
export function canonicalIp(text: string, what: string): CanonicalIp {
  let known = text.length <= 15 ? canonicalIpv4(text) : undefined;
  if (known) return known;
  known = canonical.get(text);
  if (!known) {
    const parsed = parseIp(text, what);
    known = { ...parsed, text: formatIp(parsed.bytes) };
    if (canonical.size >= MEMO_LIMIT) canonical.clear();
    canonical.set(text, known);
  }
  return known;
}

/** RFC 5952 text: lower case, longest zero run (of two or more words) as "::". */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  const words = Array.from({ length: 8 }, (_, i) => (bytes[2 * i] << 8) | bytes[2 * i + 1]);
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(':');
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLength))}`;
}
