/**
 * The remote ipcache in BPF (issue 4 item 7): which remote cluster and security identity an
 * address belongs to, as two pinned LPM tries (cm_ipcache4 / cm_ipcache6 of bpf/clustermesh.h).
 * `reconcile` makes them equal to a desired list with the fewest writes. The mirror it diffs
 * against is read from the pinned maps when the writer is made, so a restarted agent whose
 * entries did not change writes nothing.
 */
import { performance } from 'node:perf_hooks';
import type { MapInfo, NativeAddon } from '../../native/index.js';
import { errorMessage } from '../errors.js';
import { formatCidr, parseAddressOrCidr, parseIpValue, type Cidr } from '../net/cidr.js';
import { bigintToIp, familyBits, formatIp, type IpFamily } from '../net/ip.js';
import { codecs, constants } from './codecs.js';

export const IPCACHE_MAPS = ['cm_ipcache4', 'cm_ipcache6'] as const;

const FAMILY_MAP: Record<IpFamily, (typeof IPCACHE_MAPS)[number]> = { 4: 'cm_ipcache4', 6: 'cm_ipcache6' };
const FAMILY_KEY = { 4: codecs.ipcache4_key, 6: codecs.ipcache6_key } as const;
const VALUE = codecs.ipcache_value;
const MAX_IDENTITY = 0xffffffff;
const MAX_CLUSTER_ID = 0xffff;

/** One desired entry: an address (its own /32 or /128) or a CIDR with host bits zero. */
export interface IpcacheEntry {
  cidr: string;
  identity: number;
  /** the remote cluster's ID (1..65535; 0 is the local cluster, which is never imported) */
  clusterId: number;
}

export interface IpcacheValue {
  identity: number;
  clusterId: number;
}

export interface IpcacheStats {
  /** map entries created or changed */
  updates: number;
  /** map entries removed */
  deletes: number;
  /** entries the maps hold afterwards */
  entries: number;
  durationMs: number;
}

interface Prefix {
  cidr: Cidr;
  value: IpcacheValue;
}

/** By canonical CIDR text ("10.1.0.0/16", "10.1.2.3/32"). */
export type IpcacheState = Map<string, Prefix>;

export interface IpcachePlan {
  updates: Prefix[];
  deletes: Cidr[];
}

function checkValue(entry: IpcacheEntry): void {
  const { identity, clusterId, cidr } = entry;
  if (!Number.isInteger(identity) || identity < 0 || identity > MAX_IDENTITY)
    throw new Error(`ipcache entry ${cidr}: identity ${identity} is not a 32-bit unsigned integer`);
  if (!Number.isInteger(clusterId) || clusterId < 1 || clusterId > MAX_CLUSTER_ID)
    throw new Error(`ipcache entry ${cidr}: cluster ID ${clusterId} is not 1..${MAX_CLUSTER_ID} (only remote clusters are imported)`);
}

function parseEntryCidr(text: string): Cidr {
  try {
    return parseAddressOrCidr(text);
  } catch (err) {
    throw new Error(`ipcache entry: ${errorMessage(err)}`);
  }
}

/** Pure: the desired entries keyed by canonical CIDR; any bad entry throws one line. */
export function desiredState(desired: readonly IpcacheEntry[]): IpcacheState {
  const state: IpcacheState = new Map();
  const perFamily = { 4: 0, 6: 0 };
  for (const entry of desired) {
    const cidr = parseEntryCidr(entry.cidr);
    checkValue(entry);
    const key = formatCidr(cidr);
    const value = { identity: entry.identity, clusterId: entry.clusterId };
    const seen = state.get(key);
    if (seen && !sameValue(seen.value, value))
      throw new Error(`ipcache entry ${key} is listed twice with different values (identity ${seen.value.identity} of cluster ${seen.value.clusterId}, identity ${value.identity} of cluster ${value.clusterId})`);
    if (!seen && ++perFamily[cidr.family] > constants.CM_IPCACHE_MAP_MAX_ENTRIES)
      throw new Error(`more than ${constants.CM_IPCACHE_MAP_MAX_ENTRIES} IPv${cidr.family} ipcache entries: ${FAMILY_MAP[cidr.family]} cannot hold them`);
    state.set(key, { cidr, value });
  }
  return state;
}

function sameValue(a: IpcacheValue, b: IpcacheValue): boolean {
  return a.identity === b.identity && a.clusterId === b.clusterId;
}

/** Pure: the writes that turn `current` into `desired`. */
export function planIpcache(current: IpcacheState, desired: IpcacheState): IpcachePlan {
  const updates = [...desired].filter(([key, want]) => {
    const have = current.get(key);
    return !have || !sameValue(have.value, want.value);
  });
  const deletes = [...current].filter(([key]) => !desired.has(key));
  return { updates: updates.map(([, p]) => p), deletes: deletes.map(([, p]) => p.cidr) };
}

function encodeKey(cidr: Cidr, into: Buffer, at: number): void {
  FAMILY_KEY[cidr.family].encode({ prefixlen: cidr.prefix, address: formatIp(bigintToIp(cidr.family, cidr.network)) }, into, at);
}

/** A key read back as a CIDR; host bits another writer may have left are masked off, as the trie ignores them. */
function decodeKeyCidr(family: IpFamily, address: string, prefix: number): Cidr {
  const hostBits = BigInt(familyBits(family) - prefix);
  return { family, network: (parseIpValue(address).value >> hostBits) << hostBits, prefix };
}

/**
 * A kernel whose LPM tries lack batch operations refuses the call before touching an entry: with
 * ENOTSUPP (524, which has no libc name, so the addon says "E524"), or EINVAL before 5.6, which
 * had no batch commands at all. (6.18 here batches LPM tries; test/datapath/ipcache.test.ts
 * covers the fallback with a refusing addon.)
 */
const BATCH_UNSUPPORTED = new Set(['E524', 'EOPNOTSUPP', 'EINVAL']);

function batchUnsupported(err: unknown): boolean {
  return BATCH_UNSUPPORTED.has(String((err as { code?: unknown }).code));
}

export class IpcacheWriter {
  private mirror: IpcacheState;

  /** `maps`: the two LPM tries of the loaded object; `batch`: try batched writes first. */
  constructor(
    private readonly native: NativeAddon,
    private readonly maps: Record<(typeof IPCACHE_MAPS)[number], MapInfo>,
    private batch: boolean,
  ) {
    this.mirror = this.read();
  }

  /** Makes the maps equal to `desired`. Bad input throws before any write. */
  reconcile(desired: readonly IpcacheEntry[]): IpcacheStats {
    const started = performance.now();
    const want = desiredState(desired);
    const plan = planIpcache(this.mirror, want);
    try {
      for (const family of [4, 6] as const) {
        this.update(family, plan.updates.filter((p) => p.cidr.family === family));
        this.remove(family, plan.deletes.filter((c) => c.family === family));
      }
    } catch (error) {
      // Partly written: trust the kernel's view from here on.
      this.mirror = this.read();
      throw error;
    }
    this.mirror = want;
    return { updates: plan.updates.length, deletes: plan.deletes.length, entries: want.size, durationMs: performance.now() - started };
  }

  /** What the maps hold, read back from the kernel (sorted by CIDR text). */
  dump(): IpcacheEntry[] {
    return [...this.read()]
      .map(([cidr, p]) => ({ cidr, ...p.value }))
      .sort((a, b) => a.cidr.localeCompare(b.cidr, 'en', { numeric: true }));
  }

  /** The kernel's longest-prefix match for an address; null when no entry contains it. */
  lookup(ip: string): IpcacheValue | null {
    const { family, value } = parseIpValue(ip);
    const key = Buffer.alloc(FAMILY_KEY[family].size);
    encodeKey({ family, network: value, prefix: familyBits(family) }, key, 0);
    const found = this.native.mapLookup(this.maps[FAMILY_MAP[family]].fd, key, VALUE.size);
    if (!found) return null;
    const decoded = VALUE.decode(found);
    return { identity: decoded.identity, clusterId: decoded.cluster_id };
  }

  private update(family: IpFamily, prefixes: Prefix[]): void {
    if (prefixes.length === 0) return;
    const keySize = FAMILY_KEY[family].size;
    const keys = Buffer.alloc(keySize * prefixes.length);
    const values = Buffer.alloc(VALUE.size * prefixes.length);
    prefixes.forEach((p, i) => {
      encodeKey(p.cidr, keys, i * keySize);
      VALUE.encode({ identity: p.value.identity, cluster_id: p.value.clusterId }, values, i * VALUE.size);
    });
    const { fd } = this.maps[FAMILY_MAP[family]];
    if (this.tryBatch(() => this.native.mapUpdateBatch(fd, keys, values, prefixes.length))) return;
    for (let i = 0; i < prefixes.length; i++)
      this.native.mapUpdate(fd, keys.subarray(i * keySize, (i + 1) * keySize), values.subarray(i * VALUE.size, (i + 1) * VALUE.size));
  }

  private remove(family: IpFamily, cidrs: Cidr[]): void {
    if (cidrs.length === 0) return;
    const keySize = FAMILY_KEY[family].size;
    const keys = Buffer.alloc(keySize * cidrs.length);
    cidrs.forEach((c, i) => encodeKey(c, keys, i * keySize));
    const { fd } = this.maps[FAMILY_MAP[family]];
    if (this.tryBatch(() => this.native.mapDeleteBatch(fd, keys, cidrs.length))) return;
    for (let i = 0; i < cidrs.length; i++) this.native.mapDelete(fd, keys.subarray(i * keySize, (i + 1) * keySize));
  }

  /** True when the batch call did the work; false (from then on) when the kernel lacks it. */
  private tryBatch(call: () => void): boolean {
    if (!this.batch) return false;
    try {
      call();
      return true;
    } catch (err) {
      if (!batchUnsupported(err)) throw err;
      // Single writes are idempotent, so whatever a refused batch did is simply done again.
      this.batch = false;
      return false;
    }
  }

  private read(): IpcacheState {
    const state: IpcacheState = new Map();
    for (const family of [4, 6] as const) {
      const codec = FAMILY_KEY[family];
      const { fd } = this.maps[FAMILY_MAP[family]];
      const dump = this.native.mapDump(fd, codec.size, VALUE.size);
      for (let i = 0; i < dump.count; i++) {
        const key = codec.decode(dump.keys, i * codec.size);
        const value = VALUE.decode(dump.values, i * VALUE.size);
        const cidr = decodeKeyCidr(family, key.address, key.prefixlen);
        state.set(formatCidr(cidr), { cidr, value: { identity: value.identity, clusterId: value.cluster_id } });
      }
    }
    return state;
  }
}
