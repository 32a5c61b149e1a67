/**
 * Packs map entries straight into one growing Buffer per map and operation, the layout the
 * batch syscalls take. Field offsets come from the codecs (checked against the header); padding
 * is never written, and the buffers start zeroed, so it stays zero.
 */
import { BACKEND_ID_SIZE, REV_NAT_INDEX_SIZE, codecs } from './codecs.js';
import type { IpFamily } from '../net/ip.js';
import { canonicalIp } from './ip.js';
import { FAMILY_MAPS, type BackendValue, type FrontendValue, type ManagedMap, type RevNatValue } from './state.js';

const INITIAL_ENTRIES = 64;

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
    if ((this.count + 1) * this.keySize > this.keys.length) {
      this.keys = grown(this.keys);
      this.values = grown(this.values);
    }
    return this.count++;
  }
}

function grown(buf: Buffer): Buffer {
  const bigger = Buffer.alloc(buf.length * 2);
  buf.copy(bigger);
  return bigger;
}

const offsets = <F extends string>(codec: { fields: Record<F, { offset: number }> }) =>
  Object.fromEntries(Object.entries<{ offset: number }>(codec.fields).map(([k, v]) => [k, v.offset])) as Record<F, number>;

const LAYOUT = {
  4: { key: offsets(codecs.lb4_key), service: offsets(codecs.lb4_service), backend: offsets(codecs.lb4_backend), revNat: offsets(codecs.lb4_reverse_nat) },
  6: { key: offsets(codecs.lb6_key), service: offsets(codecs.lb6_service), backend: offsets(codecs.lb6_backend), revNat: offsets(codecs.lb6_reverse_nat) },
} as const;

function putBytes(buf: Buffer, at: number, bytes: Uint8Array): void {
  for (let i = 0; i < bytes.length; i++) buf[at + i] = bytes[i];
}

/** The buffers of one family: updates in write order, then deletes in write order. */
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
    backendDeletes: new EntryBuffer(f.be, 'delete', BACKEND_ID_SIZE, 0),
    revNatDeletes: new EntryBuffer(f.rnat, 'delete', REV_NAT_INDEX_SIZE, 0),
  };
}

export type FamilyBuffers = ReturnType<typeof familyBuffers>;

export function addServiceKey(out: EntryBuffer, fe: FrontendValue, slot: number): number {
  const i = out.add();
  const at = i * out.keySize;
  const o = LAYOUT[fe.family].key;
  putBytes(out.keys, at + o.address, fe.vip);
  out.keys.writeUInt16BE(fe.port, at + o.dport);
  out.keys.writeUInt16LE(slot, at + o.backend_slot);
  out.keys[at + o.proto] = fe.proto;
  return i;
}

export function addServiceEntry(out: EntryBuffer, fe: FrontendValue, slot: number, backendId: number, count: number, flags: number): void {
  const at = addServiceKey(out, fe, slot) * out.valueSize;
  const o = LAYOUT[fe.family].service;
  out.values.writeUInt32LE(backendId, at + o.backend_id);
  out.values.writeUInt16LE(count, at + o.count);
  out.values.writeUInt16LE(fe.revNat, at + o.rev_nat_index);
  out.values[at + o.flags] = flags;
}

export function addBackendKey(out: EntryBuffer, id: number): number {
  const i = out.add();
  out.keys.writeUInt32LE(id, i * out.keySize);
  return i;
}

export function addBackendEntry(out: EntryBuffer, family: IpFamily, id: number, b: BackendValue): void {
  const at = addBackendKey(out, id) * out.valueSize;
  const o = LAYOUT[family].backend;
  putBytes(out.values, at + o.address, canonicalIp(b.addr, 'backend address').bytes);
  out.values.writeUInt16BE(b.port, at + o.port);
  out.values[at + o.proto] = b.proto;
  out.values[at + o.state] = b.state;
  out.values.writeUInt16LE(b.clusterId, at + o.cluster_id);
}

export function addRevNatKey(out: EntryBuffer, id: number): number {
  const i = out.add();
  out.keys.writeUInt16LE(id, i * out.keySize);
  return i;
}

export function addRevNatEntry(out: EntryBuffer, family: IpFamily, id: number, r: RevNatValue): void {
  const at = addRevNatKey(out, id) * out.valueSize;
  const o = LAYOUT[family].revNat;
  putBytes(out.values, at + o.address, r.bytes);
  out.values.writeUInt16BE(r.port, at + o.port);
}
