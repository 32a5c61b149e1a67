/**
 * What the six managed maps hold, decoded into one record per service frontend, backend and
 * reverse-NAT entry (pure). It is both the mirror of the kernel that reconcile diffs against and
 * the shape desired contents are compiled to, so a diff compares a few numbers per entry instead
 * of building and hashing key strings.
 */
import { codecs, constants, protoName, stateName } from './codecs.js';
import { IdAllocator } from './ids.js';
import { formatIp, type IpFamily } from '../net/ip.js';
import { canonicalIp, type CanonicalIp } from './ip.js';
import type { DatapathService } from './types.js';

export const MANAGED_MAPS = ['cm_lb4_svc', 'cm_lb4_be', 'cm_lb4_rnat', 'cm_lb6_svc', 'cm_lb6_be', 'cm_lb6_rnat'] as const;
export type ManagedMap = (typeof MANAGED_MAPS)[number];
export const FAMILIES = [4, 6] as const;

export const FAMILY_MAPS = {
  4: { svc: 'cm_lb4_svc', be: 'cm_lb4_be', rnat: 'cm_lb4_rnat', key: codecs.lb4_key, service: codecs.lb4_service, backend: codecs.lb4_backend, revNat: codecs.lb4_reverse_nat },
  6: { svc: 'cm_lb6_svc', be: 'cm_lb6_be', rnat: 'cm_lb6_rnat', key: codecs.lb6_key, service: codecs.lb6_service, backend: codecs.lb6_backend, revNat: codecs.lb6_reverse_nat },
} as const;

export const MAX_SERVICE_ID = constants.CM_REV_NAT_MAP_MAX_ENTRIES - 1;
export const MAX_BACKEND_ID = 0xffffffff;

/** A slot the kernel lacks below the highest slot it has (only in state read back after a crash). */
export const ABSENT_SLOT = -1;

/** The svc map entries of one frontend: slot 0 and slots 1..n. */
export interface FrontendValue {
  family: IpFamily;
  vip: Uint8Array;
  port: number;
  proto: number;
  /** slot 0 is in the map (always, except in state read back after a crash) */
  hasHead: boolean;
  count: number;
  revNat: number;
  flags: number;
  /** backend ID of slots 1..n (ABSENT_SLOT for a hole) */
  slots: number[];
  /** some slot ≥1 is not (count 0, this revNat, no flags): every slot is rewritten */
  odd: boolean;
}

/** Address bytes are not kept: they are encoded from `addr` only when the entry is written. */
export interface BackendValue {
  addr: string;
  port: number;
  proto: number;
  state: number;
  clusterId: number;
}

export interface RevNatValue {
  addr: string;
  bytes: Uint8Array;
  port: number;
}

export interface FamilyState {
  /** by service identity */
  frontends: Map<string, FrontendValue>;
  /** by backend ID */
  backends: Map<number, BackendValue>;
  /** by rev NAT index */
  revNats: Map<number, RevNatValue>;
}

export type MapState = Record<IpFamily, FamilyState>;

export function emptyState(): MapState {
  const family = (): FamilyState => ({ frontends: new Map(), backends: new Map(), revNats: new Map() });
  return { 4: family(), 6: family() };
}

export function serviceIdentity(family: IpFamily, vip: string, port: number, proto: number): string {
  return `${family}|${vip}|${port}|${proto}`;
}

/**
 * A backend's identity as a map key. IPv4 TCP/UDP backends (nearly all of them) get a number,
 * address·2^17 + port·2 + (UDP ? 1 : 0) < 2^49, which keys maps far cheaper than a string;
 * the rest keep a string, which never equals a number.
 */
export type BackendKey = number | string;

const IPV4_PROTO_BIT: Record<number, number> = { [constants.CM_PROTO_TCP]: 0, [constants.CM_PROTO_UDP]: 1 };

export function backendKey(addr: CanonicalIp, port: number, proto: number): BackendKey {
  const protoBit = IPV4_PROTO_BIT[proto];
  if (addr.family !== 4 || protoBit === undefined) return `${addr.family}|${addr.text}|${port}|${proto}`;
  const b = addr.bytes;
  const address = ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
  return address * 131072 + port * 2 + protoBit;
}

// ---- read back from the kernel ----------------------------------------------------------------

/** `count` packed entries, as the addon's mapDump returns them. */
export interface PackedEntries {
  keys: Buffer;
  values: Buffer;
  count: number;
}

type Slot0 = { count: number; revNat: number; flags: number };
type SlotValue = { backendId: number; plain: boolean; revNat: number };

function decodeFrontends(family: IpFamily, dump: PackedEntries): Map<string, FrontendValue> {
  const f = FAMILY_MAPS[family];
  const heads = new Map<string, Slot0>();
  const slots = new Map<string, Map<number, SlotValue>>();
  const keys = new Map<string, { vip: Uint8Array; port: number; proto: number }>();
  for (let i = 0; i < dump.count; i++) {
    const key = f.key.decode(dump.keys, i * f.key.size);
    const value = f.service.decode(dump.values, i * f.service.size);
    const identity = serviceIdentity(family, key.address, key.dport, key.proto);
    if (!keys.has(identity)) keys.set(identity, { vip: canonicalIp(key.address, 'map key').bytes, port: key.dport, proto: key.proto });
    if (key.backend_slot === constants.CM_SERVICE_SLOT) {
      heads.set(identity, { count: value.count, revNat: value.rev_nat_index, flags: value.flags });
      continue;
    }
    if (!slots.has(identity)) slots.set(identity, new Map());
    const plain = value.count === 0 && value.flags === constants.CM_SVC_FLAG_NONE;
    slots.get(identity)!.set(key.backend_slot, { backendId: value.backend_id, plain, revNat: value.rev_nat_index });
  }
  const out = new Map<string, FrontendValue>();
  for (const [identity, key] of keys) {
    const head = heads.get(identity);
    const bySlot = slots.get(identity) ?? new Map<number, SlotValue>();
    const highest = Math.max(0, ...bySlot.keys());
    const list = Array.from({ length: highest }, (_, i) => bySlot.get(i + 1)?.backendId ?? ABSENT_SLOT);
    const odd = !head || [...bySlot.values()].some((s) => !s.plain || s.revNat !== head.revNat);
    out.set(identity, { family, ...key, hasHead: head !== undefined, count: head?.count ?? 0, revNat: head?.revNat ?? 0, flags: head?.flags ?? 0, slots: list, odd });
  }
  return out;
}

function decodeBackends(family: IpFamily, dump: PackedEntries): Map<number, BackendValue> {
  const f = FAMILY_MAPS[family];
  const out = new Map<number, BackendValue>();
  for (let i = 0; i < dump.count; i++) {
    const b = f.backend.decode(dump.values, i * f.backend.size);
    const id = dump.keys.readUInt32LE(i * 4);
    out.set(id, { addr: b.address, port: b.port, proto: b.proto, state: b.state, clusterId: b.cluster_id });
  }
  return out;
}

function decodeRevNats(family: IpFamily, dump: PackedEntries): Map<number, RevNatValue> {
  const f = FAMILY_MAPS[family];
  const out = new Map<number, RevNatValue>();
  for (let i = 0; i < dump.count; i++) {
    const r = f.revNat.decode(dump.values, i * f.revNat.size);
    out.set(dump.keys.readUInt16LE(i * 2), { addr: r.address, bytes: canonicalIp(r.address, 'map value').bytes, port: r.port });
  }
  return out;
}

/** The state the dumped maps hold. */
export function decodeMaps(dumps: Record<ManagedMap, PackedEntries>): MapState {
  const state = emptyState();
  for (const family of FAMILIES) {
    const f = FAMILY_MAPS[family];
    state[family] = {
      frontends: decodeFrontends(family, dumps[f.svc]),
      backends: decodeBackends(family, dumps[f.be]),
      revNats: decodeRevNats(family, dumps[f.rnat]),
    };
  }
  return state;
}

// ---- IDs ---------------------------------------------------------------------------------------

export interface Ids {
  services: IdAllocator<string>;
  backends: IdAllocator<BackendKey>;
}

/** The IDs the maps already hold: a restarted agent keeps them. */
export function restoreIds(state: MapState): Ids {
  const services: [string, number][] = [];
  const backends: [BackendKey, number][] = [];
  for (const family of FAMILIES) {
    for (const [identity, fe] of state[family].frontends) if (fe.hasHead) services.push([identity, fe.revNat]);
    for (const [id, b] of state[family].backends) backends.push([backendKey(canonicalIp(b.addr, 'map value'), b.port, b.proto), id]);
  }
  const byId = (a: [unknown, number], b: [unknown, number]) => a[1] - b[1];
  return {
    services: new IdAllocator<string>('service', MAX_SERVICE_ID, services.sort(byId)),
    backends: new IdAllocator<BackendKey>('backend', MAX_BACKEND_ID, backends.sort(byId)),
  };
}

// ---- back to services --------------------------------------------------------------------------

/** What the maps say, as services (sorted by vip, port, protocol; backends in slot order). */
export function servicesOf(state: MapState): DatapathService[] {
  const services: DatapathService[] = [];
  for (const family of FAMILIES) {
    const { frontends, backends } = state[family];
    for (const fe of frontends.values()) {
      const listed = fe.slots.flatMap((id, i) => {
        const b = backends.get(id);
        if (!b) return [];
        return [{ addr: b.addr, port: b.port, state: i < fe.count ? 'active' : stateName(b.state), clusterId: b.clusterId }];
      });
      services.push({ vip: formatIp(fe.vip), port: fe.port, proto: protoName(fe.proto), backends: listed });
    }
  }
  return services.sort((a, b) => a.vip.localeCompare(b.vip) || a.port - b.port || a.proto.localeCompare(b.proto));
}
