/**
 * The ipcache of the remote clusters (pure): which cluster, identity and pod an address belongs
 * to, for the status API (`GET /identity?ip=…`) and the CLI, and the entries the agent writes to
 * the pinned LPM maps (cm_ipcache4/6). Both come from one set of claims, so they always agree.
 */
import type { IdentityRecord } from '../lib/agent-api.js';
import type { IpcacheEntry, IpcacheStats } from '../lib/datapath/index.js';
import { maskPrefixLength } from '../lib/kvstore/codecs.js';
import { cidrContainsIp, formatCidr, formatIpValue, parseIpValue, type Cidr } from '../lib/net/cidr.js';
import { familyBits, ipFamily } from '../lib/net/ip.js';

export interface IdentityView {
  name: string;
  id: number;
  identities: ReadonlyMap<number, string>;
  ipcache: readonly { IP: string; Mask: string | null; HostIP: string; ID: number; K8sNamespace: string; K8sPodName: string }[];
}


/** Where the controller writes the entries once per pass (the Datapath's LPM maps). */
export interface IpcacheSink {
  reconcileIpcache(desired: readonly IpcacheEntry[]): IpcacheStats;
}

interface Claim {
  cidr: Cidr;
  record: IdentityRecord;
}

/** The entry's network (host bits zero), or undefined when its address is not one (validated on import; a guard). */
function entryCidr(entry: IdentityView['ipcache'][number]): Cidr | undefined {
  const family = ipFamily(entry.IP);
  if (family === undefined) return undefined;
  const bits = familyBits(family);
  const prefix = entry.Mask === null ? bits : (maskPrefixLength(entry.Mask) ?? bits);
  const hostBits = BigInt(bits - prefix);
  return { family, network: (parseIpValue(entry.IP).value >> hostBits) << hostBits, prefix };
}

/** One claim per prefix; when two clusters claim the same one, the lower cluster ID wins (any view order). */
function claimsOf(views: readonly IdentityView[]): Claim[] {
  const claims = new Map<string, Claim>();
  for (const view of [...views].sort((a, b) => a.id - b.id)) {
    for (const entry of view.ipcache) {
      const cidr = entryCidr(entry);
      if (!cidr) continue;
      const host = cidr.prefix === familyBits(cidr.family);
      const prefix = host ? formatIpValue(cidr.family, cidr.network) : formatCidr(cidr);
      if (claims.has(prefix)) continue;
      claims.set(prefix, {
        cidr,
        record: {
          prefix,
          cluster: view.name,
          clusterId: view.id,
          identity: entry.ID,
          labels: view.identities.get(entry.ID) ?? null,
          namespace: entry.K8sNamespace,
          pod: entry.K8sPodName,
          hostIP: entry.HostIP,
        },
      });
    }
  }
  return [...claims.values()];
}

function hostKey(family: number, value: bigint): string {
  return `${family}|${value}`;
}

export class IdentityIndex {
  private readonly exact = new Map<string, Claim>();
  /** masked entries, longest prefix first */
  private readonly prefixes: Claim[] = [];

  constructor(views: readonly IdentityView[]) {
    for (const claim of claimsOf(views)) {
      if (claim.cidr.prefix === familyBits(claim.cidr.family)) this.exact.set(hostKey(claim.cidr.family, claim.cidr.network), claim);
      else this.prefixes.push(claim);
    }
    this.prefixes.sort((a, b) => b.cidr.prefix - a.cidr.prefix);
  }

  get size(): number {
    return this.exact.size + this.prefixes.length;
  }

  /** Longest-prefix match; null when no peer claims the address (or it is not an address). */
  lookup(ip: string): IdentityRecord | null {
    if (ipFamily(ip) === undefined) return null;
    const { family, value } = parseIpValue(ip);
    const claim = this.exact.get(hostKey(family, value)) ?? this.prefixes.find((p) => cidrContainsIp(p.cidr, ip));
    return claim?.record ?? null;
  }

  /** What the LPM maps must hold: every claim as (CIDR, identity, cluster). */
  ipcacheEntries(): IpcacheEntry[] {
    return [...this.exact.values(), ...this.prefixes].map(({ cidr, record }) => ({
      cidr: formatCidr(cidr),
      identity: record.identity,
      clusterId: record.clusterId,
    }));
  }
}
