/**
 * Address ownership at import (pure): a peer may publish only addresses it owns. What it owns is
 * what its own node records claim — each node's pod CIDRs (IPv4AllocCIDR/IPv6AllocCIDR) and node
 * IPs — once those claims are themselves acceptable. Service backends, ipcache prefixes and their
 * HostIPs must then lie inside the publishing peer's claims. Whatever a peer claims, these are
 * never its own: loopback, unspecified, multicast, broadcast, link-local and reserved addresses,
 * IPv4-mapped IPv6 (ambiguous text where Go peers read it: lib/net/ip.ts), and the local
 * cluster's pod CIDRs, service CIDRs, ClusterIPs and node IPs.
 *
 * Claims of two peers that overlap belong to the one that held them in the previous decision
 * (`previous`), so a peer cannot take over ranges another peer already publishes; when neither
 * held them (both new, e.g. right after the agent starts) neither gets them: contested address
 * space is nobody's until one side withdraws. A node record is taken or refused as a whole (it is
 * what ownership rests on); a service loses only its refused backends; an ipcache entry is one
 * prefix. Records checked here have passed validate.ts (they parse); this decides what they may
 * point at, which depends on the other records, so it runs on whole views rather than per record.
 */
import { maskPrefixLength } from './codecs.js';
import type { ClusterService, IPCacheEntry, NodeRecord } from './types.js';
import { bigintToIp, familyBits, formatIp, ipToBigint, parseIp, parseIpPrefix, type IpFamily } from '../net/ip.js';

export type OwnershipReason =
  | 'unspecified'
  | 'loopback'
  | 'link-local'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'ipv4-mapped'
  | 'too-broad'
  | 'not-a-network'
  | 'local-cluster-ip'
  | 'local-node-ip'
  | 'local-pod-cidr'
  | 'local-service-cidr'
  | 'other-peer'
  | 'contested'
  | 'not-owned';

/** What the local cluster holds: never a peer's, whatever it claims. */
export interface LocalAddresses {
  /** the local Nodes' pod CIDRs */
  podCidrs: readonly string[];
  /** the local service CIDRs (agent flag --service-cidrs) */
  serviceCidrs: readonly string[];
  /** every local Service's ClusterIPs (covers a service CIDR nobody configured) */
  clusterIPs: readonly string[];
  /** the local Nodes' addresses */
  nodeIPs: readonly string[];
}

export const NO_LOCAL_ADDRESSES: LocalAddresses = Object.freeze({ podCidrs: [], serviceCidrs: [], clusterIPs: [], nodeIPs: [] });

/** The address-bearing records of one peer, as validated. */
export interface PeerRecords {
  name: string;
  nodes: readonly NodeRecord[];
  services: readonly ClusterService[];
  ipcache: readonly IPCacheEntry[];
}

export interface OwnershipRefusal {
  cluster: string;
  kind: 'node' | 'service' | 'ipcache';
  /** node name, `<namespace>/<name>`, or the ipcache prefix */
  record: string;
  /** the address or CIDR refused */
  address: string;
  reason: OwnershipReason;
  /** one line: what was refused and why */
  why: string;
}

/** CIDR text → the peer whose admitted node records claim it. */
export type ClaimOwners = ReadonlyMap<string, string>;

export interface Admission {
  /** the records as admitted, in input order (services without their refused backends) */
  peers: PeerRecords[];
  refusals: OwnershipRefusal[];
  /** the claims admitted (which peer holds what, for the next decision) */
  claims: ClaimOwners;
  /** the verdict on each address, reused while the local addresses and the claims stay the same */
  readonly memo: Verdicts;
}

/** What was decided for each peer's services and ipcache, valid for one set of local addresses and claims. */
interface Verdicts {
  local: LocalAddresses;
  claims: ClaimOwners;
  byPeer: Map<string, PeerVerdicts>;
}

interface PeerVerdicts {
  /** the records decided on (compared by identity: a peer's view is rebuilt when it changes) */
  services: readonly ClusterService[];
  ipcache: readonly IPCacheEntry[];
  admitted: { services: ClusterService[]; ipcache: IPCacheEntry[] };
  refusals: OwnershipRefusal[];
  /** address or prefix as published → why it is refused, or null */
  byAddress: Map<string, Problem | null>;
  /** the part of each verdict that rests on the local addresses alone (kept when only claims change) */
  reserved: Map<string, Problem | null>;
}

function sameClaims(a: ClaimOwners, b: ClaimOwners): boolean {
  if (a.size !== b.size) return false;
  for (const [text, peer] of a) if (b.get(text) !== peer) return false;
  return true;
}

/** Broader than this is never a node's pod CIDR: a peer publishing one would capture unrelated traffic (agent/routes.ts routes by the same bound). */
export const MIN_POD_CIDR_PREFIX: Record<IpFamily, number> = { 4: 8, 6: 32 };

// ---------------------------------------------------------------- ranges

interface Range {
  family: IpFamily;
  start: bigint;
  end: bigint;
  prefix: number;
}

/** family → prefix length → its host bits as a mask */
const HOST_MASKS: Record<IpFamily, bigint[]> = {
  4: Array.from({ length: 33 }, (_, prefix) => (1n << BigInt(32 - prefix)) - 1n),
  6: Array.from({ length: 129 }, (_, prefix) => (1n << BigInt(128 - prefix)) - 1n),
};

function rangeOf(family: IpFamily, network: bigint, prefix: number): Range {
  const host = HOST_MASKS[family][prefix];
  return { family, start: network & ~host, end: (network & ~host) | host, prefix };
}

function addressRange(text: string): Range | null {
  const ip = parseIp(text);
  return ip ? rangeOf(ip.family, ipToBigint(ip.bytes), familyBits(ip.family)) : null;
}

/** "a/n" or a bare address; host bits are cleared (local input is not ours to refuse). */
function looseRange(text: string): Range | null {
  if (!text.includes('/')) return addressRange(text);
  const parsed = parseIpPrefix(text);
  return parsed ? rangeOf(parsed.ip.family, ipToBigint(parsed.ip.bytes), parsed.prefix) : null;
}

const overlaps = (a: Range, b: Range): boolean => a.family === b.family && a.start <= b.end && b.start <= a.end;

function formatRange(r: Range): string {
  const address = formatIp(bigintToIp(r.family, r.start));
  return r.prefix === familyBits(r.family) ? address : `${address}/${r.prefix}`;
}

const SPECIAL: ReadonlyArray<[Range, OwnershipReason, string]> = (
  [
    ['0.0.0.0/8', 'unspecified', 'is an unspecified ("this network") address'],
    ['127.0.0.0/8', 'loopback', 'is a loopback address'],
    ['169.254.0.0/16', 'link-local', 'is a link-local address'],
    ['224.0.0.0/4', 'multicast', 'is a multicast address'],
    ['255.255.255.255/32', 'broadcast', 'is the broadcast address'],
    ['240.0.0.0/4', 'reserved', 'is a reserved address (240.0.0.0/4)'],
    ['::/128', 'unspecified', 'is the unspecified address'],
    ['::1/128', 'loopback', 'is the loopback address'],
    ['::ffff:0:0/96', 'ipv4-mapped', 'is an IPv4-mapped IPv6 address'],
    ['::/96', 'reserved', 'is an IPv4-compatible IPv6 address (deprecated, ::/96)'],
    ['fe80::/10', 'link-local', 'is a link-local address'],
    ['ff00::/8', 'multicast', 'is a multicast address'],
  ] as const
).map(([cidr, reason, what]) => [looseRange(cidr)!, reason, what]);

/** Addresses (single) of one kind, sorted, to ask "is any of them inside this range" by bisection. */
class AddressSet {
  private readonly sorted: Record<IpFamily, bigint[]> = { 4: [], 6: [] };

  constructor(ranges: readonly Range[]) {
    for (const r of ranges) this.sorted[r.family].push(r.start);
    for (const list of Object.values(this.sorted)) list.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** The first member inside `r`, or undefined. */
  within(r: Range): bigint | undefined {
    const list = this.sorted[r.family];
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid] < r.start) lo = mid + 1;
      else hi = mid;
    }
    return lo < list.length && list[lo] <= r.end ? list[lo] : undefined;
  }
}

interface LocalIndex {
  exact: [AddressSet, OwnershipReason, string][];
  cidrs: [Range, OwnershipReason, string][];
}

function localIndex(local: LocalAddresses): LocalIndex {
  const parsed = (texts: readonly string[]) => texts.map(looseRange).filter((r): r is Range => r !== null);
  return {
    exact: [
      [new AddressSet(parsed(local.clusterIPs)), 'local-cluster-ip', 'a ClusterIP of the local cluster'],
      [new AddressSet(parsed(local.nodeIPs)), 'local-node-ip', 'a node IP of the local cluster'],
    ],
    cidrs: [
      ...parsed(local.podCidrs).map((r): [Range, OwnershipReason, string] => [r, 'local-pod-cidr', `is in the local pod CIDR ${formatRange(r)}`]),
      ...parsed(local.serviceCidrs).map((r): [Range, OwnershipReason, string] => [r, 'local-service-cidr', `is in the local service CIDR ${formatRange(r)}`]),
    ],
  };
}

interface Problem {
  reason: OwnershipReason;
  what: string;
}

/** Why nobody but the local cluster may hold (part of) `r`, or null. */
function reservedProblem(r: Range, local: LocalIndex): Problem | null {
  for (const [special, reason, what] of SPECIAL) if (overlaps(special, r)) return { reason, what: r.prefix === familyBits(r.family) ? what : `overlaps ${formatRange(special)} (${reason})` };
  for (const [set, reason, what] of local.exact) {
    const hit = set.within(r);
    if (hit !== undefined) return { reason, what: r.prefix === familyBits(r.family) ? `is ${what}` : `contains ${formatIp(bigintToIp(r.family, hit))}, ${what}` };
  }
  for (const [cidr, reason, what] of local.cidrs) if (overlaps(cidr, r)) return { reason, what };
  return null;
}

// ---------------------------------------------------------------- claims

/** A peer's claim on one range, shared by every node record of that peer claiming it. */
interface ClaimGroup {
  peer: string;
  range: Range;
  text: string;
  lost?: Problem;
}

/** Admitted claims: for each family, prefix length → network → peer. Peers' claims never overlap here. */
class Owners {
  private readonly byFamily: Record<IpFamily, Map<number, Map<bigint, string>>> = { 4: new Map(), 6: new Map() };
  private readonly prefixes: Record<IpFamily, number[]> = { 4: [], 6: [] };

  add(peer: string, r: Range): void {
    const byPrefix = this.byFamily[r.family];
    if (!byPrefix.has(r.prefix)) {
      byPrefix.set(r.prefix, new Map());
      this.prefixes[r.family] = [...byPrefix.keys()].sort((a, b) => a - b);
    }
    byPrefix.get(r.prefix)!.set(r.start, peer);
  }

  /** The peer whose claim contains all of `r`, or undefined. */
  ownerOf(r: Range): string | undefined {
    for (const prefix of this.prefixes[r.family]) {
      if (prefix > r.prefix) break;
      const network = r.start & ~HOST_MASKS[r.family][prefix];
      const owner = this.byFamily[r.family].get(prefix)!.get(network);
      if (owner !== undefined) return owner;
    }
    return undefined;
  }
}

interface NodeClaim {
  range: Range;
  label: string;
  podCidr: boolean;
}

function nodeClaims(node: NodeRecord): NodeClaim[] | (Problem & { address: string }) {
  const claims: NodeClaim[] = [];
  for (const [field, alloc] of [
    ['IPv4AllocCIDR', node.IPv4AllocCIDR],
    ['IPv6AllocCIDR', node.IPv6AllocCIDR],
  ] as const) {
    if (alloc === null) continue;
    const ip = parseIp(alloc.IP);
    const prefix = maskPrefixLength(alloc.Mask);
    if (!ip || prefix === null || prefix > familyBits(ip.family)) return { reason: 'not-a-network', address: alloc.IP, what: `(${field} mask ${alloc.Mask}) is not a network` };
    const range = rangeOf(ip.family, ipToBigint(ip.bytes), prefix);
    if (range.start !== ipToBigint(ip.bytes)) return { reason: 'not-a-network', address: `${alloc.IP}/${prefix}`, what: `(${field}) has host bits set` };
    claims.push({ range, label: `pod CIDR ${formatRange(range)}`, podCidr: true });
  }
  for (const address of node.IPAddresses) {
    const range = addressRange(address.IP)!; // validate.ts: every address parses
    claims.push({ range, label: `${address.Type} ${address.IP}`, podCidr: false });
  }
  return claims;
}

function claimProblem(claim: NodeClaim, local: LocalIndex): Problem | null {
  const { range } = claim;
  if (claim.podCidr && range.prefix < MIN_POD_CIDR_PREFIX[range.family])
    return { reason: 'too-broad', what: `is broader than a node's pod CIDR can be (/${MIN_POD_CIDR_PREFIX[range.family]} at the widest)` };
  return reservedProblem(range, local);
}

/**
 * Marks the losing side of every overlap between two peers' claim groups. CIDRs either nest or
 * are disjoint, so after sorting by start (wider first) every group on the stack contains the next.
 */
function resolveOverlaps(groups: ClaimGroup[], previous: ClaimOwners): void {
  for (const family of [4, 6] as const) {
    const sorted = groups
      .filter((g) => g.range.family === family)
      .sort((a, b) => (a.range.start < b.range.start ? -1 : a.range.start > b.range.start ? 1 : a.range.prefix - b.range.prefix));
    const stack: ClaimGroup[] = [];
    for (const group of sorted) {
      while (stack.length > 0 && stack[stack.length - 1].range.end < group.range.start) stack.pop();
      for (const outer of stack) if (outer.peer !== group.peer) settle(outer, group, previous);
      stack.push(group);
    }
  }
}

function settle(a: ClaimGroup, b: ClaimGroup, previous: ClaimOwners): void {
  const aHeld = previous.get(a.text) === a.peer;
  const bHeld = previous.get(b.text) === b.peer;
  if (aHeld !== bHeld) {
    const [holder, taker] = aHeld ? [a, b] : [b, a];
    taker.lost ??= { reason: 'other-peer', what: `overlaps ${holder.text}, which cluster "${holder.peer}" publishes` };
    return;
  }
  a.lost ??= { reason: 'contested', what: `overlaps ${b.text}, also claimed by cluster "${b.peer}"` };
  b.lost ??= { reason: 'contested', what: `overlaps ${a.text}, also claimed by cluster "${a.peer}"` };
}

// ---------------------------------------------------------------- the decision

/**
 * `previous`: the decision before this one (whose claims win overlaps, whose verdicts are reused
 * when nothing they rest on changed); absent on the first.
 */
export function admitPeerRecords(local: LocalAddresses, peers: readonly PeerRecords[], previous?: Admission): Admission {
  const localIdx = localIndex(local);
  const refusals: OwnershipRefusal[] = [];
  const refuseNode = (peer: string, node: NodeRecord, address: string, p: Problem) =>
    refusals.push({ cluster: peer, kind: 'node', record: node.Name, address, reason: p.reason, why: `node ${node.Name}: ${address} ${p.what}` });

  // 1. Each node's own claims, against what is never a peer's.
  const groups = new Map<string, ClaimGroup>();
  const claimsOfNode = new Map<NodeRecord, ClaimGroup[]>();
  for (const peer of peers) {
    for (const node of peer.nodes) {
      const claims = nodeClaims(node);
      if (!Array.isArray(claims)) {
        refuseNode(peer.name, node, claims.address, claims);
        continue;
      }
      const bad = claims.map((c) => [c, claimProblem(c, localIdx)] as const).find(([, p]) => p !== null);
      if (bad) {
        refuseNode(peer.name, node, bad[0].label, bad[1]!);
        continue;
      }
      claimsOfNode.set(
        node,
        claims.map((c) => {
          const text = formatRange(c.range);
          const key = `${peer.name}|${text}`;
          let group = groups.get(key);
          if (!group) groups.set(key, (group = { peer: peer.name, range: c.range, text }));
          return group;
        }),
      );
    }
  }

  // 2. Peers against each other.
  resolveOverlaps([...groups.values()], previous?.claims ?? new Map());
  const owners = new Owners();
  const claims = new Map<string, string>();
  const admittedNodes = new Map<string, NodeRecord[]>();
  for (const peer of peers) {
    const admitted: NodeRecord[] = [];
    for (const node of peer.nodes) {
      const nodeGroups = claimsOfNode.get(node);
      if (!nodeGroups) continue;
      const lost = nodeGroups.find((g) => g.lost);
      if (lost) {
        refuseNode(peer.name, node, lost.text, lost.lost!);
        continue;
      }
      admitted.push(node);
    }
    admittedNodes.set(peer.name, admitted);
  }
  for (const peer of peers) {
    for (const node of admittedNodes.get(peer.name)!) {
      for (const group of claimsOfNode.get(node)!) {
        owners.add(peer.name, group.range);
        claims.set(group.text, peer.name);
      }
    }
  }

  // 3. What each peer's services and ipcache point at.
  const sameLocal = previous !== undefined && previous.memo.local === local;
  const reusable = sameLocal && sameClaims(previous.memo.claims, claims);
  const checks: Checks = {
    reserved: (r) => reservedProblem(r, localIdx),
    owner: (peer, r) => {
      const owner = owners.ownerOf(r);
      if (owner === peer) return null;
      if (owner !== undefined) return { reason: 'other-peer', what: `is inside what cluster "${owner}" publishes` };
      return { reason: 'not-owned', what: `is outside every pod CIDR and node IP that "${peer}" publishes` };
    },
  };
  // Only this decision's peers and addresses are carried on, so the memo never outgrows the records.
  const memo: Verdicts = { local, claims, byPeer: new Map() };
  const admittedPeers = peers.map((peer): PeerRecords => {
    const before = sameLocal ? previous.memo.byPeer.get(peer.name) : undefined;
    const unchanged = reusable && before && before.services === peer.services && before.ipcache === peer.ipcache;
    const decided = unchanged ? before : decidePeer(peer, before, reusable, checks);
    memo.byPeer.set(peer.name, decided);
    refusals.push(...decided.refusals);
    return { name: peer.name, nodes: admittedNodes.get(peer.name)!, services: decided.admitted.services, ipcache: decided.admitted.ipcache };
  });
  return { peers: admittedPeers, refusals, claims, memo };
}

interface Checks {
  /** what is never a peer's (the local addresses and the never-routable ranges) */
  reserved: (r: Range) => Problem | null;
  /** whose claims hold `r` */
  owner: (peer: string, r: Range) => Problem | null;
}

/**
 * One peer's services and ipcache against the admitted claims. `before`: the previous decision's
 * verdicts for this peer, taken whole when `claimsSame`, else only their local-address part.
 */
function decidePeer(peer: PeerRecords, before: PeerVerdicts | undefined, claimsSame: boolean, checks: Checks): PeerVerdicts {
  const byAddress = new Map<string, Problem | null>();
  const reserved = new Map<string, Problem | null>();
  const refusals: OwnershipRefusal[] = [];
  const verdict = (text: string, range: () => Range): Problem | null => {
    let p = byAddress.get(text);
    if (p !== undefined) return p; // null: admitted
    let local = before?.reserved.get(text);
    p = claimsSame ? before?.byAddress.get(text) : undefined;
    if (p === undefined) {
      const r = range();
      if (local === undefined) local = checks.reserved(r);
      p = local ?? checks.owner(peer.name, r);
    }
    reserved.set(text, local!);
    byAddress.set(text, p);
    return p;
  };
  const services = peer.services.map((svc) => {
    let backends: ClusterService['backends'] | null = null;
    for (const address of Object.keys(svc.backends)) {
      const p = verdict(address, () => addressRange(address)!);
      if (!p) continue;
      backends ??= { ...svc.backends };
      delete backends[address];
      const record = `${svc.namespace}/${svc.name}`;
      refusals.push({ cluster: peer.name, kind: 'service', record, address, reason: p.reason, why: `service ${record}: backend ${address} ${p.what}` });
    }
    return backends ? { ...svc, backends } : svc;
  });
  const ipcache = peer.ipcache.filter((entry) => {
    const range = (): Range => {
      const ip = parseIp(entry.IP)!; // validate.ts: IP and Mask parse and agree
      return rangeOf(ip.family, ipToBigint(ip.bytes), entry.Mask === null ? familyBits(ip.family) : maskPrefixLength(entry.Mask)!);
    };
    const problem = verdict(entry.Mask === null ? entry.IP : `${entry.IP}/${entry.Mask}`, range);
    const hostProblem = problem || entry.HostIP === '' ? null : verdict(entry.HostIP, () => addressRange(entry.HostIP)!);
    if (!problem && !hostProblem) return true;
    const record = formatRange(range());
    const [address, p] = problem ? [record, problem] : [entry.HostIP, hostProblem!];
    refusals.push({ cluster: peer.name, kind: 'ipcache', record, address, reason: p.reason, why: `ipcache ${record}: ${address === record ? '' : 'HostIP '}${address} ${p.what}` });
    return false;
  });
  return { services: peer.services, ipcache: peer.ipcache, admitted: { services, ipcache }, refusals, byAddress, reserved };
}
