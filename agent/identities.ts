/**
 * The in-memory ipcache of the remote clusters (pure): which cluster, identity and pod an address
 * belongs to, for the status API (`GET /identity?ip=…`) and the CLI.
 */
import { maskPrefixLength } from '../lib/kvstore/codecs.js';
import { cidrContainsIp, parseIpValue as parseIp, type Cidr } from '../lib/net/cidr.js';
import { familyBits, ipFamily } from '../lib/net/ip.js';

export interface IdentityView {
  name: string;
  id: number;
  identities: ReadonlyMap<number, string>;
  ipcache: readonly { IP: string; Mask: string | null; HostIP: string; ID: number; K8sNamespace: string; K8sPodName: string }[];
}

export interface IdentityRecord {
  /** the entry's address or `address/len` */
  prefix: string;
  cluster: string;
  clusterId: number;
  identity: number;
  /** the identity's sorted label string; null when the peer published no such identity */
  labels: string | null;
  namespace: string;
  pod: string;
  hostIP: string;
}

interface Indexed {
  cidr: Cidr;
  record: IdentityRecord;
}

export class IdentityIndex {
  private readonly exact = new Map<string, IdentityRecord>();
  /** masked entries, longest prefix first */
  private readonly prefixes: Indexed[] = [];

  constructor(views: readonly IdentityView[]) {
    for (const view of views) {
      for (const entry of view.ipcache) {
        const family = ipFamily(entry.IP);
        if (family === undefined) continue; // validated on import; a guard, not a path
        const length = entry.Mask === null ? familyBits(family) : (maskPrefixLength(entry.Mask) ?? familyBits(family));
        const prefix = length === familyBits(family) ? entry.IP : `${entry.IP}/${length}`;
        const record: IdentityRecord = {
          prefix,
          cluster: view.name,
          clusterId: view.id,
          identity: entry.ID,
          labels: view.identities.get(entry.ID) ?? null,
          namespace: entry.K8sNamespace,
          pod: entry.K8sPodName,
          hostIP: entry.HostIP,
        };
        if (length === familyBits(family)) this.exact.set(canonical(entry.IP), record);
        else this.prefixes.push({ cidr: { family, network: maskedNetwork(entry.IP, length), prefix: length }, record });
      }
    }
    this.prefixes.sort((a, b) => b.cidr.prefix - a.cidr.prefix);
  }

  get size(): number {
    return this.exact.size + this.prefixes.length;
  }

  /** Longest-prefix match; null when no peer claims the address (or it is not an address). */
  lookup(ip: string): IdentityRecord | null {
    if (ipFamily(ip) === undefined) return null;
    return this.exact.get(canonical(ip)) ?? this.prefixes.find((p) => cidrContainsIp(p.cidr, ip))?.record ?? null;
  }
}

function canonical(ip: string): string {
  const { family, value } = parseIp(ip);
  return `${family}|${value}`;
}

function maskedNetwork(ip: string, length: number): bigint {
  const { family, value } = parseIp(ip);
  const hostBits = BigInt(familyBits(family) - length);
  return (value >> hostBits) << hostBits;
}
