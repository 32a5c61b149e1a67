/**
 * Encoders/decoders for every struct of bpf/clustermesh.h. The offsets below are the header's
 * numbers: test/datapath/layout.test.ts and native/check-layout.ts compare each size and offset
 * with what the addon compiled from the header, so the two cannot drift.
 */
import { formatIp } from '../net/ip.js';
import { canonicalIp } from './ip.js';
import type { BackendState } from './types.js';
import type { L4Protocol } from '../kvstore/types.js';

/**
 * ipv4/ipv6: network order; be16: a port in network order; u*: host order (little-endian);
 * bytes: raw (an array of structs, e.g. sock4_peers.peer), sized like pad; u32s: an array of
 * __u32 (host order) sized in bytes like pad, as numbers (encoding a shorter list zeroes the rest).
 */
export type FieldType = 'u8' | 'u16' | 'u32' | 'u64' | 'be16' | 'ipv4' | 'ipv6' | 'bytes' | 'u32s' | 'pad';

export interface FieldSpec {
  offset: number;
  type: FieldType;
  size: number;
}

type FieldTypes = Record<string, FieldType>;
type ValueOf<T extends FieldType> = T extends 'ipv4' | 'ipv6' ? string : T extends 'u64' ? bigint : T extends 'bytes' ? Buffer : T extends 'u32s' ? number[] : number;

/** The decoded struct: one property per field, padding left out. */
export type Decoded<F extends FieldTypes> = {
  [K in keyof F as F[K] extends 'pad' ? never : K]: ValueOf<F[K]>;
};

export interface StructCodec<F extends FieldTypes> {
  name: string;
  size: number;
  fields: Record<keyof F & string, FieldSpec>;
  /** Writes the struct at `at` of `into` (padding zeroed) and returns `into`. */
  encode(value: Decoded<F>, into?: Buffer, at?: number): Buffer;
  decode(from: Buffer, at?: number): Decoded<F>;
}

type SizedType = 'pad' | 'bytes' | 'u32s';

const FIXED_SIZES: Record<Exclude<FieldType, SizedType>, number> = { u8: 1, u16: 2, u32: 4, u64: 8, be16: 2, ipv4: 4, ipv6: 16 };

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('clustermesh datapath codecs assume a little-endian host (x86-64, arm64)');
}

function addressToBytes(text: string, size: number): Uint8Array {
  const { bytes } = canonicalIp(text, 'map address');
  if (bytes.length !== size) throw new Error(`map address "${text}" is not IPv${size === 4 ? 4 : 6}`);
  return bytes;
}

function writeField(buf: Buffer, at: number, spec: FieldSpec, value: unknown): void {
  const o = at + spec.offset;
  switch (spec.type) {
    case 'u8': return void buf.writeUInt8(value as number, o);
    case 'u16': return void buf.writeUInt16LE(value as number, o);
    case 'u32': return void buf.writeUInt32LE(value as number, o);
    case 'u64': return void buf.writeBigUInt64LE(value as bigint, o);
    case 'be16': return void buf.writeUInt16BE(value as number, o);
    case 'ipv4':
    case 'ipv6': return void buf.set(addressToBytes(value as string, spec.size), o);
    case 'bytes': return void buf.set((value as Buffer).subarray(0, spec.size), o);
    case 'u32s':
      for (let i = 0; i < spec.size / 4; i++) buf.writeUInt32LE((value as number[])[i] ?? 0, o + 4 * i);
      return;
    case 'pad': return void buf.fill(0, o, o + spec.size);
  }
}

function readField(buf: Buffer, at: number, spec: FieldSpec): unknown {
  const o = at + spec.offset;
  switch (spec.type) {
    case 'u8': return buf.readUInt8(o);
    case 'u16': return buf.readUInt16LE(o);
    case 'u32': return buf.readUInt32LE(o);
    case 'u64': return buf.readBigUInt64LE(o);
    case 'be16': return buf.readUInt16BE(o);
    case 'ipv4':
    case 'ipv6': return formatIp(buf.subarray(o, o + spec.size));
    case 'bytes': return Buffer.from(buf.subarray(o, o + spec.size));
    case 'u32s': return Array.from({ length: spec.size / 4 }, (_, i) => buf.readUInt32LE(o + 4 * i));
    case 'pad': return undefined;
  }
}

/** `layout` lists fields in header order as [name, offset, type, size of pad/bytes/u32s?]. */
function defineStruct<F extends FieldTypes>(
  name: string,
  size: number,
  layout: { [K in keyof F]: readonly [offset: number, type: F[K], rawSize?: number] },
): StructCodec<F> {
  const fields = Object.fromEntries(
    Object.entries(layout).map(([field, [offset, type, rawSize]]) => [
      field,
      { offset, type, size: type === 'pad' || type === 'bytes' || type === 'u32s' ? (rawSize ?? 0) : FIXED_SIZES[type as Exclude<FieldType, SizedType>] },
    ]),
  ) as Record<keyof F & string, FieldSpec>;
  const specs = Object.entries(fields) as [string, FieldSpec][];
  return {
    name,
    size,
    fields,
    encode(value, into = Buffer.alloc(size), at = 0) {
      for (const [field, spec] of specs) writeField(into, at, spec, (value as Record<string, unknown>)[field]);
      return into;
    },
    decode(from, at = 0) {
      const out: Record<string, unknown> = {};
      for (const [field, spec] of specs) if (spec.type !== 'pad') out[field] = readField(from, at, spec);
      return out as Decoded<F>;
    },
  };
}

/** bpf/clustermesh.h CM_LB_INLINE_BACKENDS: backend IDs slot 0 holds itself. */
const INLINE_BACKENDS = 8;

const serviceValueLayout = {
  count: [0, 'u16'],
  rev_nat_index: [2, 'u16'],
  flags: [4, 'u8'],
  pad: [5, 'pad', 3],
  backends: [8, 'u32s', 4 * INLINE_BACKENDS],
} as const;

export const codecs = {
  lb4_key: defineStruct('lb4_key', 12, {
    address: [0, 'ipv4'], dport: [4, 'be16'], backend_slot: [6, 'u16'], proto: [8, 'u8'], pad: [9, 'pad', 3],
  }),
  lb4_service: defineStruct('lb4_service', 8 + 4 * INLINE_BACKENDS, serviceValueLayout),
  lb4_backend: defineStruct('lb4_backend', 12, {
    address: [0, 'ipv4'], port: [4, 'be16'], proto: [6, 'u8'], state: [7, 'u8'], cluster_id: [8, 'u16'], pad: [10, 'pad', 2],
  }),
  lb4_reverse_nat: defineStruct('lb4_reverse_nat', 8, { address: [0, 'ipv4'], port: [4, 'be16'], pad: [6, 'pad', 2] }),
  lb6_key: defineStruct('lb6_key', 24, {
    address: [0, 'ipv6'], dport: [16, 'be16'], backend_slot: [18, 'u16'], proto: [20, 'u8'], pad: [21, 'pad', 3],
  }),
  lb6_service: defineStruct('lb6_service', 8 + 4 * INLINE_BACKENDS, serviceValueLayout),
  lb6_backend: defineStruct('lb6_backend', 24, {
    address: [0, 'ipv6'], port: [16, 'be16'], proto: [18, 'u8'], state: [19, 'u8'], cluster_id: [20, 'u16'], pad: [22, 'pad', 2],
  }),
  lb6_reverse_nat: defineStruct('lb6_reverse_nat', 20, { address: [0, 'ipv6'], port: [16, 'be16'], pad: [18, 'pad', 2] }),
  sock4_peer: defineStruct('sock4_peer', 20, {
    frontend: [0, 'ipv4'], backend: [4, 'ipv4'], frontend_port: [8, 'be16'], backend_port: [10, 'be16'],
    backend_id: [12, 'u32'], backend_slot: [16, 'u16'], rev_nat_index: [18, 'u16'],
  }),
  sock4_peers: defineStruct('sock4_peers', 84, { peer: [0, 'bytes', 80], next_replaced: [80, 'u32'] }),
  sock6_peer: defineStruct('sock6_peer', 44, {
    frontend: [0, 'ipv6'], backend: [16, 'ipv6'], frontend_port: [32, 'be16'], backend_port: [34, 'be16'],
    backend_id: [36, 'u32'], backend_slot: [40, 'u16'], rev_nat_index: [42, 'u16'],
  }),
  sock6_peers: defineStruct('sock6_peers', 180, { peer: [0, 'bytes', 176], next_replaced: [176, 'u32'] }),
  ipcache4_key: defineStruct('ipcache4_key', 8, { prefixlen: [0, 'u32'], address: [4, 'ipv4'] }),
  ipcache6_key: defineStruct('ipcache6_key', 20, { prefixlen: [0, 'u32'], address: [4, 'ipv6'] }),
  ipcache_value: defineStruct('ipcache_value', 8, { identity: [0, 'u32'], cluster_id: [4, 'u16'], pad: [6, 'pad', 2] }),
};

/** Keys that are bare integers: the backend and rev NAT maps are arrays, whose keys are __u32. */
export const BACKEND_ID_SIZE = 4;
export const REV_NAT_INDEX_SIZE = 4;

/** The header's named numbers; native/check-layout.ts compares them with the addon's constants(). */
export const constants = {
  CM_PROTO_TCP: 6,
  CM_PROTO_UDP: 17,
  CM_BACKEND_ACTIVE: 0,
  CM_BACKEND_TERMINATING: 1,
  CM_BACKEND_QUARANTINED: 2,
  CM_BACKEND_MAINTENANCE: 3,
  CM_SVC_FLAG_NONE: 0,
  CM_SVC_FLAG_REMOTE_BACKENDS: 1,
  CM_BACKEND_ID_NONE: 0,
  CM_BACKEND_UNUSED_PORT: 0,
  CM_SERVICE_SLOT: 0,
  CM_LB_INLINE_BACKENDS: INLINE_BACKENDS,
  CM_SERVICE_MAP_MAX_ENTRIES: 262144,
  CM_BACKEND_MAP_MAX_ENTRIES: 262144,
  CM_REV_NAT_MAP_MAX_ENTRIES: 65536,
  CM_SOCK_PEERS: 4,
  CM_IPCACHE_MAP_MAX_ENTRIES: 262144,
  CM_STAT_SOCK_STATE_FAILED: 0,
  CM_STAT_SOCK_PEER_REPLACED: 1,
  CM_STATS_COUNT: 2,
} as const;

export const PROTO_NUMBER: Record<L4Protocol, number> = { TCP: constants.CM_PROTO_TCP, UDP: constants.CM_PROTO_UDP };

export function protoName(number: number): L4Protocol {
  const name = (Object.keys(PROTO_NUMBER) as L4Protocol[]).find((p) => PROTO_NUMBER[p] === number);
  if (!name) throw new Error(`map entry has unknown protocol number ${number}`);
  return name;
}

export const STATE_NUMBER: Record<BackendState, number> = {
  active: constants.CM_BACKEND_ACTIVE,
  terminating: constants.CM_BACKEND_TERMINATING,
  quarantined: constants.CM_BACKEND_QUARANTINED,
  maintenance: constants.CM_BACKEND_MAINTENANCE,
};

export function stateName(number: number): BackendState {
  const name = (Object.keys(STATE_NUMBER) as BackendState[]).find((s) => STATE_NUMBER[s] === number);
  if (!name) throw new Error(`map entry has unknown backend state ${number}`);
  return name;
}
