// Usage: node scripts/kind/ranges.mjs WHAT CIDR...
// Exits 1 with one line when a CIDR overlaps the host uplink or the lab's address plan
// (lab/topology/plan.ts: FORBIDDEN_RANGES, bridge, pod and service ranges). Docker's bridges share
// the host's routing table with both, so an overlap would shadow the uplink or the lab's routes.
import console from 'node:console';
import net from 'node:net';
import process from 'node:process';

const RESERVED = {
  'host uplink': ['192.0.2.0/24', 'fd00::/64', '10.255.255.53/32'],
  lab: ['10.99.0.0/24', '10.101.0.0/16', '10.102.0.0/16', '10.111.0.0/16', '10.112.0.0/16', 'fd99::/16'],
};

function parse(cidr) {
  const [addr, lenText] = cidr.split('/');
  const family = net.isIPv4(addr) ? 4 : net.isIPv6(addr) ? 6 : 0;
  if (!family) throw new Error(`'${cidr}' is not a CIDR`);
  const bits = family === 4 ? 32 : 128;
  const len = lenText === undefined ? bits : Number(lenText);
  let value = 0n;
  if (family === 4) {
    for (const part of addr.split('.')) value = (value << 8n) | BigInt(Number(part));
  } else {
    const [head, tail = ''] = addr.split('::');
    const groups = (s) => (s ? s.split(':') : []);
    const h = groups(head);
    const t = groups(tail);
    const all = addr.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
    for (const g of all) value = (value << 16n) | BigInt(parseInt(g, 16));
  }
  const mask = len === 0 ? 0n : ((1n << BigInt(len)) - 1n) << BigInt(bits - len);
  return { family, start: value & mask, end: (value & mask) | (~mask & ((1n << BigInt(bits)) - 1n)) };
}

const [what, ...cidrs] = process.argv.slice(2);
for (const cidr of cidrs) {
  let a;
  try {
    a = parse(cidr);
  } catch (err) {
    console.error(`${what}: ${err.message}: give it as address/length`);
    process.exit(1);
  }
  for (const [owner, list] of Object.entries(RESERVED)) {
    for (const reserved of list) {
      const b = parse(reserved);
      if (a.family === b.family && a.start <= b.end && b.start <= a.end) {
        console.error(
          `${what} uses ${cidr}, which overlaps the ${owner} range ${reserved}: give it a range of its own (see scripts/kind/README.md)`,
        );
        process.exit(1);
      }
    }
  }
}
