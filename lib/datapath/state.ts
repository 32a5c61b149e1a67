/**
 * What the six managed maps hold (pure), in the forms the planner diffs against: the service
 * hash decoded into one record per frontend (a diff compares a few numbers per slot), and the
 * backend and reverse-NAT arrays (bpf/sock_lb.c) as the very bytes the kernel holds, indexed by
 * ID, so a diff compares bytes the planner has just encoded into a batch buffer — no object per
 * backend. In the agent those bytes are the arrays' own mapped memory, which the writes store
 * into; elsewhere (tests) a copy that a commit keeps equal.
 */
import { codecs, constants, protoName, stateName } from './codecs.js';
import { EndpointIndex } from './endpoint-index.js';
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

/** IDs index the arrays, so they stay below max_entries (0 is CM_BACKEND_ID_NONE). */
export const MAX_SERVICE_ID = constants.CM_REV_NAT_MAP_MAX_ENTRIES - 1;
export const MAX_BACKEND_ID = constants.CM_BACKEND_MAP_MAX_ENTRIES - 1;

/** A slot the kernel lacks below the highest slot it has (only in state read back after a crash). */
export const ABSENT_SLOT = -1;

/**
 * A service or backend identity (address, port, protocol) as a map key. IPv4 TCP/UDP ones (nearly
 * all) get a number, address·2^17 + port·2 + (UDP ? 1 : 0) < 2^49, which keys maps far cheaper
 * than a string; the rest keep a string, which never equals a number.
 */
export type EndpointKey = number | string;

const IPV4_PROTO_BIT: Record<number, number> = { [constants.CM_PROTO_TCP]: 0, [constants.CM_PROTO_UDP]: 1 };

/** The bit an IPv4 key gives the protocol (TCP 0, UDP 1); -1 for a protocol keyed by string. */
export function ipv4ProtoBit(proto: number): number {
  return IPV4_PROTO_BIT[proto] ?? -1;
}

/** ipv4EndpointKey with the protocol's bit looked up once: always a number (nothing to box, 120k times a full sync). */
export function ipv4Key(address: number, port: number, protoBit: number): number {
  return address * 131072 + port * 2 + protoBit;
}

/** The key of an IPv4 address given as a number (lib/net/ip.ts ipv4Number); undefined for other protocols. */
export function ipv4EndpointKey(address: number, port: number, proto: number): number | undefined {
  const protoBit = ipv4ProtoBit(proto);
  return protoBit < 0 ? undefined : ipv4Key(address, port, protoBit);
}

export function endpointKey(addr: CanonicalIp, port: number, proto: number): EndpointKey {
  if (addr.family === 4) {
    const b = addr.bytes;
    const key = ipv4EndpointKey(((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0, port, proto);
    if (key !== undefined) return key;
  }
  return `${addr.family}|${addr.text}|${port}|${proto}`;
}

/** An IPv4 address as a number (lib/net/ip.ts ipv4Number: no bytes to allocate), or an address's bytes. */
export type Address = number | Uint8Array;

export function addressBytes(addr: Address): Uint8Array {
  if (typeof addr !== 'number') return addr;
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, addr);
  return bytes;
}

/**
 * The svc map entries of one frontend: slot 0, which holds the backends of slots
 * 1..CM_LB_INLINE_BACKENDS itself, and an entry per slot beyond those.
 */
export interface FrontendValue {
  family: IpFamily;
  vip: Address;
  port: number;
  proto: number;
  /** slot 0 is in the map (always, except in state read back after a crash) */
  hasHead: boolean;
  count: number;
  revNat: number;
  flags: number;
  /** backend ID of slots 1..n (ABSENT_SLOT for a hole) */
  slots: readonly number[];
  /** slot 0 is missing, or an entry beyond the inline slots holds more than its backend: everything is rewritten */
  odd: boolean;
  /** entries of slots 1..CM_LB_INLINE_BACKENDS found in the map (this layout never writes them): deleted */
  strays?: readonly number[];
}

/**
 * An array map's values as the kernel holds them, entry i at i·stride (the value size rounded up
 * to 8, the kernel's element size). An entry is in use when its port (a backend's, a frontend's;
 * never 0) is not CM_BACKEND_UNUSED_PORT: the programs read the arrays by the same rule.
 *
 * Either a copy (grown on demand up to the map's capacity; commit() keeps it equal to the map) or,
 * in the agent, the map's own memory (`mapped`: a BPF_F_MMAPABLE array, native mapMmap): there
 * `set` is the write itself. Its stores never show a program half an entry in use: a value with a
 * port is written port word last, an unused one port word first, each 32-bit word in one store
 * (the port is 4-aligned in every value: codecs.ts), the port word with Atomics.store, which
 * orders the stores before it.
 */
/** The little-endian 32-bit word at `at` (codecs.ts: the host is little-endian). */
function wordAt(buf: Buffer, at: number): number {
  return buf[at] | (buf[at + 1] << 8) | (buf[at + 2] << 16) | (buf[at + 3] << 24);
}

export class ArrayMirror {
  bytes: Buffer;
  readonly stride: number;
  /** the same memory as 32-bit words (mapped only) */
  private readonly words?: Int32Array;

  constructor(
    readonly valueSize: number,
    private readonly portOffset: number,
    private readonly capacity: number,
    mapped?: ArrayBuffer,
  ) {
    this.stride = Math.ceil(valueSize / 8) * 8;
    if (mapped) {
      this.bytes = Buffer.from(mapped);
      this.words = new Int32Array(mapped);
    } else this.bytes = Buffer.alloc(this.stride * 1024);
  }

  /** True when this is the map's own memory: a `set` is the map write. */
  get mapped(): boolean {
    return this.words !== undefined;
  }

  inUse(index: number): boolean {
    const at = index * this.stride + this.portOffset;
    return at < this.bytes.length && (this.bytes[at] | this.bytes[at + 1]) !== constants.CM_BACKEND_UNUSED_PORT;
  }

  /** True when entry `index` holds the `valueSize` bytes of `from` at `offset`. */
  equals(index: number, from: Buffer, offset: number): boolean {
    const size = this.valueSize;
    const at = index * this.stride;
    if (at >= this.bytes.length) {
      for (let i = 0; i < size; i++) if (from[offset + i] !== 0) return false;
      return true;
    }
    for (let i = 0; i < size; i++) if (this.bytes[at + i] !== from[offset + i]) return false;
    return true;
  }

  /** Entry `index` becomes the `valueSize` bytes of `from` at `offset` (as the kernel's did). */
  set(index: number, from: Buffer, offset: number): void {
    const at = index * this.stride;
    if (this.words) return this.store(at / 4, from, offset);
    if (at >= this.bytes.length) this.grow(index);
    // a byte loop: values are 8 to 24 bytes, and Buffer.copy's native call costs more than that
    for (let i = 0; i < this.valueSize; i++) this.bytes[at + i] = from[offset + i];
  }

  /** The indexes of the entries in use, ascending. */
  used(): number[] {
    const out: number[] = [];
    const entries = Math.floor(this.bytes.length / this.stride);
    for (let i = 0; i < entries; i++) if (this.inUse(i)) out.push(i);
    return out;
  }

  private store(word: number, from: Buffer, offset: number): void {
    const words = this.words!;
    const portWord = this.portOffset / 4;
    const count = this.valueSize / 4;
    const port = wordAt(from, offset + 4 * portWord);
    if ((port & 0xffff) === constants.CM_BACKEND_UNUSED_PORT) {
      // unused from the first store on; the rest after it, ordered too (clears are few)
      Atomics.store(words, word + portWord, port);
      for (let i = 0; i < count; i++) if (i !== portWord) Atomics.store(words, word + i, wordAt(from, offset + 4 * i));
      return;
    }
    for (let i = 0; i < count; i++) if (i !== portWord) words[word + i] = wordAt(from, offset + 4 * i);
    Atomics.store(words, word + portWord, port);
  }

  private grow(index: number): void {
    let entries = this.bytes.length / this.stride;
    while (entries <= index) entries *= 2;
    const bigger = Buffer.alloc(Math.min(entries, this.capacity) * this.stride);
    this.bytes.copy(bigger);
    this.bytes = bigger;
  }
}

/**
 * EndpointKey → FrontendValue, a Map's interface over an EndpointIndex: a JS Map boxes every
 * numeric key above 2^31 (every IPv4 frontend), and a full sync sets, and looks up twice, 30k.
 * Iteration follows no order.
 */
export class FrontendTable {
  private readonly index = new EndpointIndex();
  private readonly valueAt: (FrontendValue | undefined)[] = [];
  private readonly free: number[] = [];

  get size(): number {
    return this.index.size;
  }

  get(key: EndpointKey): FrontendValue | undefined {
    const at = this.index.get(key);
    return at === undefined ? undefined : this.valueAt[at];
  }

  set(key: EndpointKey, value: FrontendValue): void {
    let at = this.index.get(key);
    if (at === undefined) {
      at = this.free.pop() ?? this.valueAt.length;
      this.index.set(key, at);
    }
    this.valueAt[at] = value;
  }

  delete(key: EndpointKey): boolean {
    const at = this.index.get(key);
    if (at === undefined) return false;
    this.index.delete(key);
    this.valueAt[at] = undefined;
    this.free.push(at);
    return true;
  }

  *[Symbol.iterator](): IterableIterator<[EndpointKey, FrontendValue]> {
    for (const [key, at] of this.index.entries()) yield [key, this.valueAt[at]!];
  }

  *keys(): IterableIterator<EndpointKey> {
    for (const [key] of this.index.entries()) yield key;
  }

  *values(): IterableIterator<FrontendValue> {
    for (const [, at] of this.index.entries()) yield this.valueAt[at]!;
  }
}

export interface MapState {
  /** slot 0 and the slots of every frontend, both families, by its EndpointKey */
  frontends: FrontendTable;
  /** the backend arrays (index = backend ID) */
  backends: Record<IpFamily, ArrayMirror>;
  /** the reverse-NAT arrays (index = rev NAT index) */
  revNats: Record<IpFamily, ArrayMirror>;
}

/** The backend and rev NAT arrays of both families, as names (bpf/sock_lb.c). */
export type ArrayMap = (typeof FAMILY_MAPS)[IpFamily]['be' | 'rnat'];
export type ServiceMap = (typeof FAMILY_MAPS)[IpFamily]['svc'];

/** Nothing in the maps; `mapped`: the arrays' own memory (native mapMmap) instead of copies. */
export function emptyState(mapped?: Record<ArrayMap, ArrayBuffer>): MapState {
  const be = (family: IpFamily) =>
    new ArrayMirror(FAMILY_MAPS[family].backend.size, FAMILY_MAPS[family].backend.fields.port.offset, constants.CM_BACKEND_MAP_MAX_ENTRIES, mapped?.[FAMILY_MAPS[family].be]);
  const rnat = (family: IpFamily) =>
    new ArrayMirror(FAMILY_MAPS[family].revNat.size, FAMILY_MAPS[family].revNat.fields.port.offset, constants.CM_REV_NAT_MAP_MAX_ENTRIES, mapped?.[FAMILY_MAPS[family].rnat]);
  return { frontends: new FrontendTable(), backends: { 4: be(4), 6: be(6) }, revNats: { 4: rnat(4), 6: rnat(6) } };
}

// ---- read back from the kernel ----------------------------------------------------------------

/** `count` packed entries, as the addon's mapDump returns them. */
export interface PackedEntries {
  keys: Buffer;
  values: Buffer;
  count: number;
}

type Slot0 = { count: number; revNat: number; flags: number; inline: number[] };
type SlotValue = { backendId: number; plain: boolean };

const INLINE_BACKENDS = constants.CM_LB_INLINE_BACKENDS;

/** The slots of a frontend: the inline ones of slot 0 (0 = none), then its entries beyond them. */
function slotList(inline: readonly number[], entries: Map<number, SlotValue>): number[] {
  let length = 0;
  for (const slot of entries.keys()) length = Math.max(length, slot);
  if (length === 0) for (let i = 0; i < inline.length; i++) if (inline[i] !== constants.CM_BACKEND_ID_NONE) length = i + 1;
  return Array.from({ length }, (_, i) => {
    const id = i < INLINE_BACKENDS ? inline[i] : entries.get(i + 1)?.backendId;
    return id === undefined || id === constants.CM_BACKEND_ID_NONE ? ABSENT_SLOT : id;
  });
}

function decodeFrontends(family: IpFamily, dump: PackedEntries, out: FrontendTable): void {
  const f = FAMILY_MAPS[family];
  const heads = new Map<EndpointKey, Slot0>();
  const slots = new Map<EndpointKey, Map<number, SlotValue>>();
  const strays = new Map<EndpointKey, number[]>();
  const keys = new Map<EndpointKey, { vip: Uint8Array; port: number; proto: number }>();
  for (let i = 0; i < dump.count; i++) {
    const key = f.key.decode(dump.keys, i * f.key.size);
    const value = f.service.decode(dump.values, i * f.service.size);
    const vip = canonicalIp(key.address, 'map key');
    const identity = endpointKey(vip, key.dport, key.proto);
    if (!keys.has(identity)) keys.set(identity, { vip: vip.bytes, port: key.dport, proto: key.proto });
    if (key.backend_slot === constants.CM_SERVICE_SLOT) {
      heads.set(identity, { count: value.count, revNat: value.rev_nat_index, flags: value.flags, inline: value.backends });
    } else if (key.backend_slot <= INLINE_BACKENDS) {
      if (!strays.has(identity)) strays.set(identity, []);
      strays.get(identity)!.push(key.backend_slot);
    } else {
      if (!slots.has(identity)) slots.set(identity, new Map());
      const [backendId, ...rest] = value.backends;
      const plain = value.count === 0 && value.rev_nat_index === 0 && value.flags === constants.CM_SVC_FLAG_NONE && rest.every((id) => id === constants.CM_BACKEND_ID_NONE);
      slots.get(identity)!.set(key.backend_slot, { backendId, plain });
    }
  }
  for (const [identity, key] of keys) {
    const head = heads.get(identity);
    const bySlot = slots.get(identity) ?? new Map<number, SlotValue>();
    const odd = !head || [...bySlot.values()].some((s) => !s.plain);
    const fe: FrontendValue = { family, ...key, hasHead: head !== undefined, count: head?.count ?? 0, revNat: head?.revNat ?? 0, flags: head?.flags ?? 0, slots: slotList(head?.inline ?? [], bySlot), odd };
    if (strays.has(identity)) fe.strays = strays.get(identity);
    out.set(identity, fe);
  }
}

/** An array's dump (every index, unused ones all zero) into its mirror. */
function decodeArray(dump: PackedEntries, mirror: ArrayMirror): void {
  for (let i = 0; i < dump.count; i++) {
    const index = dump.keys.readUInt32LE(i * 4);
    const at = i * mirror.valueSize;
    if (!mirror.equals(index, dump.values, at)) mirror.set(index, dump.values, at);
  }
}

/** The state the maps hold: the service hashes from their dumps, the arrays from theirs or, `mapped`, their own memory. */
export function decodeMaps(dumps: Record<ServiceMap, PackedEntries> & Partial<Record<ArrayMap, PackedEntries>>, mapped?: Record<ArrayMap, ArrayBuffer>): MapState {
  const state = emptyState(mapped);
  for (const family of FAMILIES) {
    const f = FAMILY_MAPS[family];
    decodeFrontends(family, dumps[f.svc], state.frontends);
    if (mapped) continue;
    decodeArray(dumps[f.be]!, state.backends[family]);
    decodeArray(dumps[f.rnat]!, state.revNats[family]);
  }
  return state;
}

/** Backend `id` of the family's array (in use). */
export function backendAt(state: MapState, family: IpFamily, id: number) {
  const mirror = state.backends[family];
  return FAMILY_MAPS[family].backend.decode(mirror.bytes, id * mirror.stride);
}

// ---- IDs ---------------------------------------------------------------------------------------

export interface Ids {
  services: IdAllocator<EndpointKey>;
  backends: IdAllocator<EndpointKey>;
}

/** The IDs the maps already hold: a restarted agent keeps them. */
export function restoreIds(state: MapState): Ids {
  const services: [EndpointKey, number][] = [];
  const backends: [EndpointKey, number][] = [];
  for (const [identity, fe] of state.frontends) if (fe.hasHead) services.push([identity, fe.revNat]);
  for (const family of FAMILIES) {
    for (const id of state.backends[family].used()) {
      const b = backendAt(state, family, id);
      backends.push([endpointKey(canonicalIp(b.address, 'map value'), b.port, b.proto), id]);
    }
  }
  const byId = (a: [unknown, number], b: [unknown, number]) => a[1] - b[1];
  return {
    services: new IdAllocator<EndpointKey>('service', MAX_SERVICE_ID, services.sort(byId), new EndpointIndex()),
    backends: new IdAllocator<EndpointKey>('backend', MAX_BACKEND_ID, backends.sort(byId), new EndpointIndex()),
  };
}

// ---- back to services --------------------------------------------------------------------------

/** What the maps say, as services (sorted by vip, port, protocol; backends in slot order). */
export function servicesOf(state: MapState): DatapathService[] {
  const services: DatapathService[] = [];
  for (const fe of state.frontends.values()) {
    const listed = fe.slots.flatMap((id, i) => {
      if (id === ABSENT_SLOT || !state.backends[fe.family].inUse(id)) return [];
      const b = backendAt(state, fe.family, id);
      return [{ addr: b.address, port: b.port, state: i < fe.count ? 'active' : stateName(b.state), clusterId: b.cluster_id }];
    });
    services.push({ vip: formatIp(addressBytes(fe.vip)), port: fe.port, proto: protoName(fe.proto), backends: listed });
  }
  return services.sort((a, b) => a.vip.localeCompare(b.vip) || a.port - b.port || a.proto.localeCompare(b.proto));
}
