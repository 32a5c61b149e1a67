/**
 * Packs map entries straight into one growing Buffer per map and operation, the layout the
 * batch syscalls take. Field offsets come from the codecs (checked against the header); padding
 * is never written and the buffers start zeroed, so it stays zero (each buffer is written by one
 * encoder, which writes the same fields every time). The backend and rev NAT maps
 * are arrays (bpf/sock_lb.c): removing an entry there is writing the all-zero value.
 */
import { BACKEND_ID_SIZE, REV_NAT_INDEX_SIZE, codecs, constants } from './codecs.js';
import type { IpFamily } from '../net/ip.js';
import { FAMILY_MAPS, type Address, type FrontendValue, type ManagedMap } from './state.js';

const INITIAL_ENTRIES = 64;
const INLINE_BACKENDS = constants.CM_LB_INLINE_BACKENDS;

export class EntryBuffer {
  keys: Buffer;
  values: Buffer;
  count = 0;

  constructor(
    readonly map: ManagedMap,
    readonly op: 'update' | 'delete',
    readonly keySize: number,
    readonly valueSize: number,
  ) {
    this.keys = Buffer.alloc(keySize * INITIAL_ENTRIES);
    this.values = Buffer.alloc(valueSize * INITIAL_ENTRIES);
  }

  /** Makes room for one more entry and returns its index. */
  add(): number {
    if ((this.count + 1) * this.keySize > this.keys.length) this.grow(this.count + 1);
    return this.count++;
  }

  /** Makes room for `entries` in all (a plan's upper bound), at once. */
  reserve(entries: number): void {
    if (entries * this.keySize > this.keys.length) this.grow(entries);
  }

  private grow(entries: number): void {
    let room = this.keys.length / this.keySize;
    while (room < entries) room *= 2;
    this.keys = grown(this.keys, room * this.keySize);
    this.values = grown(this.values, room * this.valueSize);
  }
}

function grown(buf: Buffer, size: number): Buffer {
  const bigger = Buffer.alloc(size);
  buf.copy(bigger);
  return bigger;
}

const offsets = <F extends string>(codec: { fields: Record<F, { offset: number }> }) =>
  Object.fromEntries(Object.entries<{ offset: number }>(codec.fields).map(([k, v]) => [k, v.offset])) as Record<F, number>;

const LAYOUT = {
  4: { key: offsets(codecs.lb4_key), service: offsets(codecs.lb4_service), backend: offsets(codecs.lb4_backend), revNat: offsets(codecs.lb4_reverse_nat) },
  6: { key: offsets(codecs.lb6_key), service: offsets(codecs.lb6_service), backend: offsets(codecs.lb6_backend), revNat: offsets(codecs.lb6_reverse_nat) },
} as const;

function putAddress(buf: Buffer, at: number, addr: Address): void {
  if (typeof addr === 'number') {
    buf[at] = addr >>> 24;
    buf[at + 1] = (addr >>> 16) & 255;
    buf[at + 2] = (addr >>> 8) & 255;
    buf[at + 3] = addr & 255;
  } else for (let i = 0; i < addr.length; i++) buf[at + i] = addr[i];
}

/** The buffers of one family: updates in write order, then removals in write order. */
export function familyBuffers(family: IpFamily) {
  const f = FAMILY_MAPS[family];
  const svcKey = f.key.size;
  const svcValue = f.service.size;
  return {
    revNatUpdates: new EntryBuffer(f.rnat, 'update', REV_NAT_INDEX_SIZE, f.revNat.size),
    backendUpdates: new EntryBuffer(f.be, 'update', BACKEND_ID_SIZE, f.backend.size),
    slotUpdates: new EntryBuffer(f.svc, 'update', svcKey, svcValue),
    headUpdates: new EntryBuffer(f.svc, 'update', svcKey, svcValue),
    headDeletes: new EntryBuffer(f.svc, 'delete', svcKey, 0),
    slotDeletes: new EntryBuffer(f.svc, 'delete', svcKey, 0),
    backendClears: new EntryBuffer(f.be, 'update', BACKEND_ID_SIZE, f.backend.size),
    revNatClears: new EntryBuffer(f.rnat, 'update', REV_NAT_INDEX_SIZE, f.revNat.size),
  };
}

export type FamilyBuffers = ReturnType<typeof familyBuffers>;

// Plain byte stores: 150k service entries per full sync, and Buffer's write methods check bounds
// and types on every call.
function put16be(buf: Buffer, at: number, v: number): void {
  buf[at] = v >>> 8;
  buf[at + 1] = v & 255;
}

function put16le(buf: Buffer, at: number, v: number): void {
  buf[at] = v & 255;
  buf[at + 1] = v >>> 8;
}

function put32le(buf: Buffer, at: number, v: number): void {
  buf[at] = v & 255;
  buf[at + 1] = (v >>> 8) & 255;
  buf[at + 2] = (v >>> 16) & 255;
  buf[at + 3] = v >>> 24;
}

export function addServiceKey(out: EntryBuffer, fe: FrontendValue, slot: number): number {
  const i = out.add();
  const at = i * out.keySize;
  const o = LAYOUT[fe.family].key;
  putAddress(out.keys, at + o.address, fe.vip);
  put16be(out.keys, at + o.dport, fe.port);
  put16le(out.keys, at + o.backend_slot, slot);
  out.keys[at + o.proto] = fe.proto;
  return i;
}

/** Slot 0 of `fe`: count, rev NAT, flags and the backends of its first CM_LB_INLINE_BACKENDS slots (zero past the last). */
export function addServiceHead(out: EntryBuffer, fe: FrontendValue): void {
  const at = addServiceKey(out, fe, constants.CM_SERVICE_SLOT) * out.valueSize;
  const o = LAYOUT[fe.family].service;
  put16le(out.values, at + o.count, fe.count);
  put16le(out.values, at + o.rev_nat_index, fe.revNat);
  out.values[at + o.flags] = fe.flags;
  for (let i = 0; i < INLINE_BACKENDS; i++) put32le(out.values, at + o.backends + 4 * i, i < fe.slots.length ? fe.slots[i] : constants.CM_BACKEND_ID_NONE);
}

/** The entry of `slot` (beyond the inline ones): its backend in backends[0], every other byte zero. */
export function addServiceSlot(out: EntryBuffer, fe: FrontendValue, slot: number, backendId: number): void {
  const at = addServiceKey(out, fe, slot) * out.valueSize;
  put32le(out.values, at + LAYOUT[fe.family].service.backends, backendId);
}

/** A new array entry: its index as the key; returns the offset of its value. */
function addArrayEntry(out: EntryBuffer, index: number): number {
  const i = out.add();
  put32le(out.keys, i * out.keySize, index);
  return i * out.valueSize;
}

/** Writes the all-zero value (nothing) at `index` of an array. */
export function addArrayClear(out: EntryBuffer, index: number): void {
  const at = addArrayEntry(out, index);
  out.values.fill(0, at, at + out.valueSize);
}

/** Appends backend `id`; returns the offset of its value (to compare it with what the kernel holds). */
export function addBackendEntry(out: EntryBuffer, family: IpFamily, id: number, addr: Address, port: number, proto: number, state: number, clusterId: number): number {
  const at = addArrayEntry(out, id);
  const o = LAYOUT[family].backend;
  putAddress(out.values, at + o.address, addr);
  put16be(out.values, at + o.port, port);
  out.values[at + o.proto] = proto;
  out.values[at + o.state] = state;
  put16le(out.values, at + o.cluster_id, clusterId);
  return at;
}

/** Appends rev NAT `index` → vip:port; returns the offset of its value. */
export function addRevNatEntry(out: EntryBuffer, family: IpFamily, index: number, vip: Address, port: number): number {
  const at = addArrayEntry(out, index);
  const o = LAYOUT[family].revNat;
  putAddress(out.values, at + o.address, vip);
  put16be(out.values, at + o.port, port);
  return at;
}
