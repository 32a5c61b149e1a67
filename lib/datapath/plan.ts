/**
 * Pure decisions of the datapath: desired services → the exact map contents they mean, the
 * fewest writes that turn the current contents into those, and map contents → services again.
 * Map contents are tables of key bytes → value bytes held as latin1 strings (one char per byte),
 * so equal structs compare equal cheaply and diffs are byte-exact.
 */
import {
  BACKEND_ID_SIZE,
  PROTO_NUMBER,
  REV_NAT_INDEX_SIZE,
  STATE_NUMBER,
  codecs,
  constants,
  protoName,
  stateName,
} from './codecs.js';
import { IdAllocator } from './ids.js';
import { canonicalIp, type IpFamily } from './ip.js';
import { layoutSlots } from './slots.js';
import type { BackendState, DatapathService } from './types.js';

export const MANAGED_MAPS = ['cm_lb4_svc', 'cm_lb4_be', 'cm_lb4_rnat', 'cm_lb6_svc', 'cm_lb6_be', 'cm_lb6_rnat'] as const;
export type ManagedMap = (typeof MANAGED_MAPS)[number];
export type EntryTable = Map<string, string>;
export type MapEntries = Record<ManagedMap, EntryTable>;

const FAMILIES = {
  4: { svc: 'cm_lb4_svc', be: 'cm_lb4_be', rnat: 'cm_lb4_rnat', key: codecs.lb4_key, service: codecs.lb4_service, backend: codecs.lb4_backend, revNat: codecs.lb4_reverse_nat },
  6: { svc: 'cm_lb6_svc', be: 'cm_lb6_be', rnat: 'cm_lb6_rnat', key: codecs.lb6_key, service: codecs.lb6_service, backend: codecs.lb6_backend, revNat: codecs.lb6_reverse_nat },
} as const;

const MAX_PORT = 65535;
const MAX_SLOTS = 65535; // backend_slot and count are __u16
const MAX_CLUSTER_ID = 65535; // cluster_id is __u16
export const MAX_SERVICE_ID = constants.CM_REV_NAT_MAP_MAX_ENTRIES - 1;
export const MAX_BACKEND_ID = 0xffffffff;

/** When services disagree about a backend, the backend map records the least available state. */
const STATE_SEVERITY: Record<BackendState, number> = { active: 0, terminating: 1, maintenance: 2, quarantined: 3 };

export function emptyEntries(): MapEntries {
  return Object.fromEntries(MANAGED_MAPS.map((m) => [m, new Map()])) as MapEntries;
}

// Entries are encoded into one scratch buffer and copied out as strings right away.
const scratch = Buffer.alloc(64);
const bytesOf = (size: number) => scratch.toString('latin1', 0, size);
const idScratch = Buffer.alloc(8);
const keyScratch = Buffer.alloc(64);

function u32Key(id: number): string {
  idScratch.writeUInt32LE(id, 0);
  return idScratch.toString('latin1', 0, BACKEND_ID_SIZE);
}

function u16Key(id: number): string {
  idScratch.writeUInt16LE(id, 0);
  return idScratch.toString('latin1', 0, REV_NAT_INDEX_SIZE);
}

// ---- validation ---------------------------------------------------------------------------------

export interface NormalBackend {
  addr: string;
  port: number;
  state: BackendState;
  clusterId: number;
  identity: string;
}

export interface NormalService {
  family: IpFamily;
  vip: string;
  port: number;
  proto: number;
  backends: NormalBackend[];
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > MAX_PORT) throw new Error(`${what}: port ${port} is not in 1..${MAX_PORT}`);
}

function backendIdentity(family: IpFamily, addr: string, port: number, proto: number): string {
  return `${family}|${addr}|${port}|${proto}`;
}

function normalizeService(service: DatapathService): NormalService {
  const where = `service ${service.vip}:${service.port}/${service.proto}`;
  const vip = canonicalIp(service.vip, `${where}: vip`);
  checkPort(service.port, where);
  const proto = PROTO_NUMBER[service.proto];
  if (proto === undefined) throw new Error(`${where}: protocol must be TCP or UDP`);
  if (service.backends.length > MAX_SLOTS) throw new Error(`${where}: more than ${MAX_SLOTS} backends`);
  const backends = service.backends.map((b) => {
    const at = `${where}: backend ${b.addr}:${b.port}`;
    const addr = canonicalIp(b.addr, at);
    if (addr.family !== vip.family) throw new Error(`${at}: address family differs from the vip's`);
    checkPort(b.port, at);
    if (STATE_NUMBER[b.state] === undefined) throw new Error(`${at}: unknown state "${b.state}"`);
    if (!Number.isInteger(b.clusterId) || b.clusterId < 0 || b.clusterId > MAX_CLUSTER_ID) {
      throw new Error(`${at}: clusterId ${b.clusterId} is not in 0..${MAX_CLUSTER_ID}`);
    }
    return { addr: addr.text, port: b.port, state: b.state, clusterId: b.clusterId, identity: backendIdentity(vip.family, addr.text, b.port, proto) };
  });
  return { family: vip.family, vip: vip.text, port: service.port, proto, backends };
}

function serviceIdentity(s: { family: IpFamily; vip: string; port: number; proto: number }): string {
  return `${s.family}|${s.vip}|${s.port}|${s.proto}`;
}

/** Validates everything first, so bad input changes nothing. Throws one line naming the culprit. */
export function normalizeServices(services: readonly DatapathService[]): NormalService[] {
  const seen = new Set<string>();
  return services.map((service) => {
    const normal = normalizeService(service);
    const identity = serviceIdentity(normal);
    if (seen.has(identity)) throw new Error(`service ${service.vip}:${service.port}/${service.proto} is listed twice`);
    seen.add(identity);
    return normal;
  });
}

// ---- IDs ------------------------------------------------------------------------------------------

export interface Ids {
  services: IdAllocator;
  backends: IdAllocator;
}

/** Frees the IDs of what is no longer wanted, then gives every wanted service and backend one. */
function assignIds(services: NormalService[], ids: Ids): void {
  const wantedServices = new Set(services.map(serviceIdentity));
  const wantedBackends = new Set(services.flatMap((s) => s.backends.map((b) => b.identity)));
  ids.services.retainOnly(wantedServices);
  ids.backends.retainOnly(wantedBackends);
  for (const identity of wantedServices) ids.services.acquire(identity);
  for (const identity of wantedBackends) ids.backends.acquire(identity);
}

/** The IDs the maps already hold: a restarted agent keeps them. */
export function restoreIds(current: MapEntries): Ids {
  const services: [string, number][] = [];
  const backends: [string, number][] = [];
  for (const family of [4, 6] as const) {
    const f = FAMILIES[family];
    for (const [k, v] of current[f.svc]) {
      const key = f.key.decode(Buffer.from(k, 'latin1'));
      if (key.backend_slot !== constants.CM_SERVICE_SLOT) continue;
      const id = f.service.decode(Buffer.from(v, 'latin1')).rev_nat_index;
      services.push([serviceIdentity({ family, vip: key.address, port: key.dport, proto: key.proto }), id]);
    }
    for (const [k, v] of current[f.be]) {
      const b = f.backend.decode(Buffer.from(v, 'latin1'));
      backends.push([backendIdentity(family, b.address, b.port, b.proto), Buffer.from(k, 'latin1').readUInt32LE(0)]);
    }
  }
  const byId = (a: [string, number], b: [string, number]) => a[1] - b[1];
  return {
    services: new IdAllocator('service', MAX_SERVICE_ID, services.sort(byId)),
    backends: new IdAllocator('backend', MAX_BACKEND_ID, backends.sort(byId)),
  };
}

// ---- desired contents ---------------------------------------------------------------------------

interface BackendRecord {
  addr: string;
  port: number;
  proto: number;
  state: BackendState;
  clusterId: number;
  family: IpFamily;
}

/** One record per backend ID: the first listing wins, except the state (least available wins). */
function collectBackends(services: NormalService[], ids: Ids): Map<number, BackendRecord> {
  const records = new Map<number, BackendRecord>();
  for (const s of services) {
    for (const b of s.backends) {
      const id = ids.backends.get(b.identity)!;
      const known = records.get(id);
      if (!known) records.set(id, { addr: b.addr, port: b.port, proto: s.proto, state: b.state, clusterId: b.clusterId, family: s.family });
      else if (STATE_SEVERITY[b.state] > STATE_SEVERITY[known.state]) known.state = b.state;
    }
  }
  return records;
}

function putServiceEntries(out: MapEntries, s: NormalService, ids: Ids): void {
  const f = FAMILIES[s.family];
  const revNatIndex = ids.services.get(serviceIdentity(s))!;
  const layout = layoutSlots(s.backends.map((b) => ({ backendId: ids.backends.get(b.identity)!, state: b.state })));
  const remote = s.backends.some((b) => b.clusterId !== 0);
  const svc = out[f.svc];
  // the key differs per slot only in backend_slot: encode it once, then patch those two bytes
  f.key.encode({ address: s.vip, dport: s.port, backend_slot: constants.CM_SERVICE_SLOT, proto: s.proto }, keyScratch);
  const slotOffset = f.key.fields.backend_slot.offset;
  const entry = (slot: number, backendId: number, count: number, flags: number) => {
    keyScratch.writeUInt16LE(slot, slotOffset);
    f.service.encode({ backend_id: backendId, count, rev_nat_index: revNatIndex, flags }, scratch);
    svc.set(keyScratch.toString('latin1', 0, f.key.size), bytesOf(f.service.size));
  };
  const flags = remote ? constants.CM_SVC_FLAG_REMOTE_BACKENDS : constants.CM_SVC_FLAG_NONE;
  entry(constants.CM_SERVICE_SLOT, constants.CM_BACKEND_ID_NONE, layout.count, flags);
  layout.slots.forEach((backendId, i) => entry(i + 1, backendId, 0, constants.CM_SVC_FLAG_NONE));
  f.revNat.encode({ address: s.vip, port: s.port }, scratch);
  out[f.rnat].set(u16Key(revNatIndex), bytesOf(f.revNat.size));
}

/** The map contents `services` mean (assigning IDs as needed). */
export function desiredEntries(services: readonly DatapathService[], ids: Ids): MapEntries {
  const normal = normalizeServices(services);
  assignIds(normal, ids);
  const out = emptyEntries();
  for (const s of normal) putServiceEntries(out, s, ids);
  for (const [id, b] of collectBackends(normal, ids)) {
    const f = FAMILIES[b.family];
    f.backend.encode({ address: b.addr, port: b.port, proto: b.proto, state: STATE_NUMBER[b.state], cluster_id: b.clusterId }, scratch);
    out[f.be].set(u32Key(id), bytesOf(f.backend.size));
  }
  return out;
}

// ---- diff -----------------------------------------------------------------------------------------

export interface WriteStep {
  map: ManagedMap;
  op: 'update' | 'delete';
  keys: string[];
  /** for updates: the value of each key */
  values: string[];
}

function slotOf(key: string, family: IpFamily): number {
  const o = FAMILIES[family].key.fields.backend_slot.offset;
  return key.charCodeAt(o) | (key.charCodeAt(o + 1) << 8);
}

function changed(current: EntryTable, desired: EntryTable): [string, string][] {
  const out: [string, string][] = [];
  for (const [k, v] of desired) if (current.get(k) !== v) out.push([k, v]);
  return out;
}

function removed(current: EntryTable, desired: EntryTable): string[] {
  const out: string[] = [];
  for (const k of current.keys()) if (!desired.has(k)) out.push(k);
  return out;
}

function updateStep(map: ManagedMap, entries: [string, string][]): WriteStep {
  return { map, op: 'update', keys: entries.map((e) => e[0]), values: entries.map((e) => e[1]) };
}

/**
 * The fewest writes, ordered so a reader never meets a dangling reference: reverse NAT and
 * backends exist before a slot names them; slots are filled before slot 0 raises `count`;
 * slot 0 goes (or shrinks) before the slots behind it, and backends and reverse NAT go last.
 */
export function diffEntries(current: MapEntries, desired: MapEntries): WriteStep[] {
  const steps: WriteStep[] = [];
  const deletes: WriteStep[] = [];
  for (const family of [4, 6] as const) {
    const f = FAMILIES[family];
    const svcChanges = changed(current[f.svc], desired[f.svc]);
    const isServiceSlot = (k: string) => slotOf(k, family) === constants.CM_SERVICE_SLOT;
    steps.push(
      updateStep(f.rnat, changed(current[f.rnat], desired[f.rnat])),
      updateStep(f.be, changed(current[f.be], desired[f.be])),
      updateStep(f.svc, svcChanges.filter(([k]) => !isServiceSlot(k))),
      updateStep(f.svc, svcChanges.filter(([k]) => isServiceSlot(k))),
    );
    const svcGone = removed(current[f.svc], desired[f.svc]);
    deletes.push(
      { map: f.svc, op: 'delete', keys: [...svcGone.filter(isServiceSlot), ...svcGone.filter((k) => !isServiceSlot(k))], values: [] },
      { map: f.be, op: 'delete', keys: removed(current[f.be], desired[f.be]), values: [] },
      { map: f.rnat, op: 'delete', keys: removed(current[f.rnat], desired[f.rnat]), values: [] },
    );
  }
  return [...steps, ...deletes].filter((s) => s.keys.length > 0);
}

// ---- back to services -----------------------------------------------------------------------------

/** What the maps say, as services (sorted by vip, port, protocol; backends in slot order). */
export function entriesToServices(current: MapEntries): DatapathService[] {
  const services: (DatapathService & { slots: Map<number, number>; count: number })[] = [];
  for (const family of [4, 6] as const) {
    const f = FAMILIES[family];
    const byFrontend = new Map<string, (typeof services)[number]>();
    for (const [k, v] of current[f.svc]) {
      const key = f.key.decode(Buffer.from(k, 'latin1'));
      const value = f.service.decode(Buffer.from(v, 'latin1'));
      const frontend = `${key.address}|${key.dport}|${key.proto}`;
      let s = byFrontend.get(frontend);
      if (!s) {
        s = { vip: key.address, port: key.dport, proto: protoName(key.proto), backends: [], slots: new Map(), count: 0 };
        byFrontend.set(frontend, s);
        services.push(s);
      }
      if (key.backend_slot === constants.CM_SERVICE_SLOT) s.count = value.count;
      else s.slots.set(key.backend_slot, value.backend_id);
    }
    for (const s of byFrontend.values()) {
      for (const slot of [...s.slots.keys()].sort((a, b) => a - b)) {
        const raw = current[f.be].get(u32Key(s.slots.get(slot)!));
        if (raw === undefined) continue;
        const b = f.backend.decode(Buffer.from(raw, 'latin1'));
        const state = slot <= s.count ? 'active' : stateName(b.state);
        s.backends.push({ addr: b.address, port: b.port, state, clusterId: b.cluster_id });
      }
    }
  }
  return services
    .map(({ vip, port, proto, backends }) => ({ vip, port, proto, backends }))
    .sort((a, b) => a.vip.localeCompare(b.vip) || a.port - b.port || a.proto.localeCompare(b.proto));
}
