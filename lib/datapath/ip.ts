/**
 * The datapath's view of an address: bytes plus one canonical text (so IDs key on it), on the hot
 * path of every reconcile. The grammar and the text form are lib/net/ip.ts; this adds speed.
 */
import { formatIp, parseIpv4, requireIp, type ParsedIp } from '../net/ip.js';

export interface CanonicalIp extends ParsedIp {
  text: string;
}

// Other texts (IPv6, odd IPv4 spellings) are parsed once each (bounded memo).
const MEMO_LIMIT = 1_000_000;
const canonical = new Map<string, CanonicalIp>();

/**
 * Bytes and canonical text; throws a one-line error naming `what` when `text` is no address
 * (`what` may be a function, so a name is only built for an error).
 */
export function canonicalIp(text: string, what: string | (() => string)): CanonicalIp {
  // A dotted quad that parses has no leading zeros: it is its own canonical text, no memo needed.
  const ipv4 = text.length <= 15 ? parseIpv4(text) : null;
  if (ipv4) return { family: 4, bytes: ipv4, text };
  let known = canonical.get(text);
  if (!known) {
    const parsed = requireIp(text, typeof what === 'string' ? what : what());
    known = { ...parsed, text: formatIp(parsed.bytes) };
    if (canonical.size >= MEMO_LIMIT) canonical.clear();
    canonical.set(text, known);
  }
  return known;
}
