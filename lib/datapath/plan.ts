/**
 * Pure decisions of the datapath: desired services → the fewest map writes that make the maps
 * (mirrored as a decoded MapState) mean them, packed for the batch syscalls.
 *
 * Incremental: each service's last applied input is cached with what it compiled to, so a
 * reconcile compares each service with its cached input (a few field compares) and only
 * validates, assigns IDs, lays out and diffs the services that changed, appeared or went away
 * (and the backends and reverse-NAT entries they touch). The first plan of a Planner sweeps
 * everything the maps hold, so leftovers from before a restart or a failed write go away.
 */
import { PROTO_NUMBER, STATE_NUMBER, constants } from './codecs.js';
import {
  addBackendEntry,
  addBackendKey,
  addRevNatEntry,
  addRevNatKey,
  addServiceEntry,
  addServiceKey,
  familyBuffers,
  type EntryBuffer,
  type FamilyBuffers,
} from './encode.js';
import type { IpFamily } from '../net/ip.js';
import { canonicalIp } from './ip.js';
import { layoutSlots } from './slots.js';
import {
  ABSENT_SLOT,
  FAMILIES,
  type BackendKey,
  backendKey,
  restoreIds,
  serviceIdentity,
  type BackendValue,
  type FrontendValue,
  type Ids,
  type MapState,
  type RevNatValue,
} from './state.js';
import type { BackendState, DatapathService } from './types.js';

const MAX_PORT = 65535;
const MAX_SLOTS = 65535; // backend_slot and count are __u16
const MAX_CLUSTER_ID = 65535; // cluster_id is __u16

/** When services disagree about a backend, the backend map records the least available state. */
const STATE_SEVERITY: Record<BackendState, number> = { active: 0, terminating: 1, maintenance: 2, quarantined: 3 };
const STATE_BY_SEVERITY = (Object.keys(STATE_SEVERITY) as BackendState[]).sort((a, b) => STATE_SEVERITY[a] - STATE_SEVERITY[b]);

// ---- validation ---------------------------------------------------------------------------------

/** One listing of a backend; its address bytes are encoded only when the backend is written. */
export interface NormalBackend {
  /** as listed (compared with the next input) */
  listedAddr: string;
  addr: string;
  port: number;
  state: BackendState;
  clusterId: number;
  key: BackendKey;
}

export interface NormalService {
  /** the input as listed (compared with the next input) */
  listed: { vip: string; port: number; proto: DatapathService['proto'] };
  family: IpFamily;
  vip: string;
  vipBytes: Uint8Array;
  port: number;
  proto: number;
  backends: NormalBackend[];
  identity: string;
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > MAX_PORT) throw new Error(`${what}: port ${port} is not in 1..${MAX_PORT}`);
}

/** Validates one service and puts its addresses in canonical form. Throws one line naming the culprit. */
export function normalizeService(service: DatapathService): NormalService {
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
    return { listedAddr: b.addr, addr: addr.text, port: b.port, state: b.state, clusterId: b.clusterId, key: backendKey(addr, b.port, proto) };
  });
  const identity = serviceIdentity(vip.family, vip.text, service.port, proto);
  return { listed: { vip: service.vip, port: service.port, proto: service.proto }, family: vip.family, vip: vip.text, vipBytes: vip.bytes, port: service.port, proto, backends, identity };
}

// ---- the per-service cache ----------------------------------------------------------------------

/** One service as last planned: its validated input and compiled entries. */
interface CachedService {
  inputKey: string;
  normal: NormalService;
  frontend?: FrontendValue;
  /** the plan generation that last listed it */
  seen: number;
}

const inputKeyOf = (s: DatapathService) => `${s.vip}|${s.port}|${s.proto}`;

function sameFrontend(a: NormalService['listed'], b: DatapathService): boolean {
  return a.vip === b.vip && a.port === b.port && a.proto === b.proto;
}

/** Structural compare: true when `input` is what `cached` was planned from (so it plans the same). */
export function sameInput(cached: NormalService, input: DatapathService): boolean {
  if (!sameFrontend(cached.listed, input) || cached.backends.length !== input.backends.length) return false;
  for (let i = 0; i < input.backends.length; i++) {
    const x = cached.backends[i];
    const y = input.backends[i];
    if (x.listedAddr !== y.addr || x.port !== y.port || x.state !== y.state || x.clusterId !== y.clusterId) return false;
  }
  return true;
}

/** A backend ID and every listing of it (one per service that lists it, duplicates included). */
interface BackendUse {
  key: BackendKey;
  id: number;
  family: IpFamily;
  /** its backend map value; never changed in place, so the mirror shares it once committed */
  value: BackendValue;
  /** created with its first listing: a literal of one element, not an empty array grown by push (17 slots) */
  listings: NormalBackend[];
}

/** The backend map value: the least available state any listing gives, the lowest cluster ID. */
function backendValue(use: BackendUse): BackendValue {
  let severity = 0;
  let clusterId = MAX_CLUSTER_ID;
  for (const l of use.listings) {
    severity = Math.max(severity, STATE_SEVERITY[l.state]);
    clusterId = Math.min(clusterId, l.clusterId);
  }
  const state = STATE_NUMBER[STATE_BY_SEVERITY[severity]];
  if (use.value.state !== state || use.value.clusterId !== clusterId) use.value = { ...use.value, state, clusterId };
  return use.value;
}

function compileFrontend(s: NormalService, revNat: number, backendIds: number[], previous: readonly number[]): FrontendValue {
  const layout = layoutSlots(
    s.backends.map((b, i) => ({ backendId: backendIds[i], state: b.state })),
    previous,
  );
  const remote = s.backends.some((b) => b.clusterId !== 0);
  return {
    family: s.family,
    vip: s.vipBytes,
    port: s.port,
    proto: s.proto,
    hasHead: true,
    count: layout.count,
    revNat,
    flags: remote ? constants.CM_SVC_FLAG_REMOTE_BACKENDS : constants.CM_SVC_FLAG_NONE,
    slots: layout.slots,
    odd: false,
  };
}

// ---- what a plan touches ------------------------------------------------------------------------

/** The entries a plan may change, each with what it should hold (null: nothing). */
interface Touched {
  frontends: Map<string, FrontendValue | null>;
  backends: Map<number, BackendUse | null>;
  revNats: Map<number, RevNatValue | null>;
}

interface Changes {
  frontends: Map<string, FrontendValue | null>;
  backends: Map<number, BackendValue | null>;
  revNats: Map<number, RevNatValue | null>;
}

function nothingTouched(): Record<IpFamily, Touched> {
  const family = (): Touched => ({ frontends: new Map(), backends: new Map(), revNats: new Map() });
  return { 4: family(), 6: family() };
}

/** Every entry the maps hold, as unwanted: what the plan wants again overrides it. */
function everythingTouched(mirror: MapState): Record<IpFamily, Touched> {
  const touched = nothingTouched();
  for (const family of FAMILIES) {
    for (const identity of mirror[family].frontends.keys()) touched[family].frontends.set(identity, null);
    for (const id of mirror[family].backends.keys()) touched[family].backends.set(id, null);
    for (const id of mirror[family].revNats.keys()) touched[family].revNats.set(id, null);
  }
  return touched;
}

// ---- diff ---------------------------------------------------------------------------------------

function diffRevNats(changes: Map<number, RevNatValue | null>, have: Map<number, RevNatValue>, out: FamilyBuffers, family: IpFamily): void {
  for (const [id, want] of changes) {
    const old = have.get(id);
    if (want && (!old || old.addr !== want.addr || old.port !== want.port)) addRevNatEntry(out.revNatUpdates, family, id, want);
    else if (!want && old) addRevNatKey(out.revNatDeletes, id);
  }
}

function diffBackends(changes: Map<number, BackendValue | null>, have: Map<number, BackendValue>, out: FamilyBuffers, family: IpFamily): void {
  for (const [id, want] of changes) {
    const old = have.get(id);
    const same = old && want && old.addr === want.addr && old.port === want.port && old.proto === want.proto && old.state === want.state && old.clusterId === want.clusterId;
    if (want && !same) addBackendEntry(out.backendUpdates, family, id, want);
    else if (!want && old) addBackendKey(out.backendDeletes, id);
  }
}

function deleteSlotsFrom(old: FrontendValue, from: number, out: EntryBuffer): void {
  for (let i = from; i < old.slots.length; i++) if (old.slots[i] !== ABSENT_SLOT) addServiceKey(out, old, i + 1);
}

function diffFrontend(want: FrontendValue | null, old: FrontendValue | undefined, out: FamilyBuffers): void {
  if (!want) {
    if (!old) return;
    if (old.hasHead) addServiceKey(out.headDeletes, old, constants.CM_SERVICE_SLOT);
    deleteSlotsFrom(old, 0, out.slotDeletes);
    return;
  }
  // slot values carry the rev NAT index too, so a new index (or odd old slots) rewrites them all
  const rewriteAll = !old || old.odd || !old.hasHead || old.revNat !== want.revNat;
  for (let i = 0; i < want.slots.length; i++) {
    if (rewriteAll || old.slots[i] !== want.slots[i]) addServiceEntry(out.slotUpdates, want, i + 1, want.slots[i], 0, constants.CM_SVC_FLAG_NONE);
  }
  if (old) deleteSlotsFrom(old, want.slots.length, out.slotDeletes);
  if (rewriteAll || old.count !== want.count || old.flags !== want.flags) {
    addServiceEntry(out.headUpdates, want, constants.CM_SERVICE_SLOT, constants.CM_BACKEND_ID_NONE, want.count, want.flags);
  }
}

// ---- the planner --------------------------------------------------------------------------------

export interface Plan {
  /**
   * Packed writes in the order that never lets a reader meet a dangling reference: reverse NAT
   * and backends exist before a slot names them; slots are filled before slot 0 raises `count`;
   * slot 0 goes before the slots behind it, and backends and reverse NAT go last. The buffers
   * are the planner's own and hold until its next plan.
   */
  steps: EntryBuffer[];
  updates: number;
  deletes: number;
  /** Call once every step is in the maps: the mirror then holds what they hold. */
  commit(): void;
}

export class Planner {
  private readonly byInputKey = new Map<string, CachedService>();
  private readonly byIdentity = new Map<string, CachedService>();
  private readonly uses = new Map<BackendKey, BackendUse>();
  private readonly buffers = { 4: familyBuffers(4), 6: familyBuffers(6) };
  private ids: Ids;
  private generation = 0;
  private sweep = true;
  /** the services of the previous plan, in the order they were listed */
  private listed: CachedService[] = [];

  /** `mirror` is what the maps hold now; the planner keeps it current through commit(). */
  constructor(private readonly mirror: MapState) {
    this.ids = restoreIds(mirror);
  }

  get backendCount(): number {
    return this.mirror[4].backends.size + this.mirror[6].backends.size;
  }

  /** The writes that make the maps mean `desired`. Bad input throws before anything changes. */
  plan(desired: readonly DatapathService[]): Plan {
    const { fresh, listed } = this.changedServices(desired);
    try {
      const touched = this.sweep ? everythingTouched(this.mirror) : nothingTouched();
      if (listed.length - fresh.length < this.byInputKey.size) this.retire(fresh, touched);
      this.admit(fresh, touched);
      const changes = this.settleBackends(touched);
      if (this.sweep) this.releaseUnwantedIds();
      this.sweep = false;
      this.listed = listed;
      return this.diff(changes);
    } catch (error) {
      this.reset(); // e.g. out of IDs: nothing was written, so start over from the mirror
      throw error;
    }
  }

  /**
   * Validates what is new or changed and finds listings twice; changes nothing but `seen`.
   * A service is first looked for where it was in the previous list (callers keep their order),
   * then by its frontend.
   */
  private changedServices(desired: readonly DatapathService[]): { fresh: CachedService[]; listed: CachedService[] } {
    const generation = ++this.generation;
    const fresh: CachedService[] = [];
    const listed: CachedService[] = [];
    for (let i = 0; i < desired.length; i++) {
      const s = desired[i];
      const hint = this.listed[i];
      const cached = hint && sameFrontend(hint.normal.listed, s) ? hint : this.byInputKey.get(inputKeyOf(s));
      if (cached && cached.seen !== generation && sameInput(cached.normal, s)) {
        cached.seen = generation;
        listed.push(cached);
        continue;
      }
      const entry = { inputKey: inputKeyOf(s), normal: normalizeService(s), seen: generation };
      fresh.push(entry);
      listed.push(entry);
    }
    const freshIdentities = new Set<string>();
    for (const f of fresh) {
      const identity = f.normal.identity;
      if (freshIdentities.has(identity) || this.byIdentity.get(identity)?.seen === generation) {
        const { vip, port, proto } = f.normal.listed;
        throw new Error(`service ${vip}:${port}/${proto} is listed twice`);
      }
      freshIdentities.add(identity);
    }
    return { fresh, listed };
  }

  /** Drops the services not listed this time (or changed), their IDs and backend listings. */
  private retire(fresh: CachedService[], touched: Record<IpFamily, Touched>): void {
    const staying = new Set(fresh.map((f) => f.normal.identity));
    for (const old of this.byInputKey.values()) {
      if (old.seen === this.generation) continue;
      const { identity, family, backends } = old.normal;
      this.byInputKey.delete(old.inputKey);
      if (this.byIdentity.get(identity) === old) this.byIdentity.delete(identity);
      for (const listing of backends) this.unlist(listing, touched);
      if (staying.has(identity)) continue;
      touched[family].frontends.set(identity, null);
      const revNat = this.ids.services.get(identity);
      if (revNat !== undefined) touched[family].revNats.set(revNat, null);
      this.ids.services.release(identity);
    }
  }

  private unlist(listing: NormalBackend, touched: Record<IpFamily, Touched>): void {
    const use = this.uses.get(listing.key)!;
    use.listings.splice(use.listings.indexOf(listing), 1);
    touched[use.family].backends.set(use.id, use);
  }

  private list(listing: NormalBackend, s: NormalService, touched: Record<IpFamily, Touched>): number {
    let use = this.uses.get(listing.key);
    if (use) use.listings.push(listing);
    else {
      const id = this.ids.backends.acquire(listing.key);
      const value = { addr: listing.addr, port: listing.port, proto: s.proto, state: STATE_NUMBER[listing.state], clusterId: listing.clusterId };
      use = { key: listing.key, id, family: s.family, value, listings: [listing] };
      this.uses.set(listing.key, use);
    }
    touched[s.family].backends.set(use.id, use);
    return use.id;
  }

  /** Gives the new and changed services IDs, backend listings and compiled entries. */
  private admit(fresh: CachedService[], touched: Record<IpFamily, Touched>): void {
    for (const f of fresh) {
      const s = f.normal;
      const revNat = this.ids.services.acquire(s.identity);
      const backendIds = s.backends.map((b) => this.list(b, s, touched));
      const previous = this.mirror[s.family].frontends.get(s.identity)?.slots ?? [];
      f.frontend = compileFrontend(s, revNat, backendIds, previous);
      this.byInputKey.set(f.inputKey, f);
      this.byIdentity.set(s.identity, f);
      touched[s.family].frontends.set(s.identity, f.frontend);
      touched[s.family].revNats.set(revNat, { addr: s.vip, bytes: s.vipBytes, port: s.port });
    }
  }

  /** After a sweep: IDs restored from the maps for things no longer wanted are free again. */
  private releaseUnwantedIds(): void {
    this.ids.services.retainOnly(new Set(this.byIdentity.keys()));
    this.ids.backends.retainOnly(this.uses);
  }

  /** Backends that lost their last listing lose their ID; the rest get their (new) value. */
  private settleBackends(touched: Record<IpFamily, Touched>): Record<IpFamily, Changes> {
    const changes = {} as Record<IpFamily, Changes>;
    for (const family of FAMILIES) {
      const backends = new Map<number, BackendValue | null>();
      for (const [id, use] of touched[family].backends) {
        if (use && use.listings.length > 0) {
          backends.set(id, backendValue(use));
          continue;
        }
        if (use) {
          this.uses.delete(use.key);
          this.ids.backends.release(use.key);
        }
        backends.set(id, null);
      }
      changes[family] = { frontends: touched[family].frontends, revNats: touched[family].revNats, backends };
    }
    return changes;
  }

  private diff(changes: Record<IpFamily, Changes>): Plan {
    for (const family of FAMILIES) {
      const c = changes[family];
      const out = this.buffers[family];
      const have = this.mirror[family];
      for (const b of Object.values(out)) b.count = 0;
      diffRevNats(c.revNats, have.revNats, out, family);
      diffBackends(c.backends, have.backends, out, family);
      for (const [identity, want] of c.frontends) diffFrontend(want, have.frontends.get(identity), out);
    }
    const b4 = this.buffers[4];
    const b6 = this.buffers[6];
    const updates = [b4.revNatUpdates, b4.backendUpdates, b4.slotUpdates, b4.headUpdates, b6.revNatUpdates, b6.backendUpdates, b6.slotUpdates, b6.headUpdates];
    const deletes = [b4.headDeletes, b4.slotDeletes, b4.backendDeletes, b4.revNatDeletes, b6.headDeletes, b6.slotDeletes, b6.backendDeletes, b6.revNatDeletes];
    const total = (list: EntryBuffer[]) => list.reduce((n, b) => n + b.count, 0);
    return {
      steps: [...updates, ...deletes].filter((b) => b.count > 0),
      updates: total(updates),
      deletes: total(deletes),
      commit: () => this.apply(changes),
    };
  }

  private apply(changes: Record<IpFamily, Changes>): void {
    for (const family of FAMILIES) {
      const have = this.mirror[family];
      const c = changes[family];
      setOrDelete(have.frontends, c.frontends);
      setOrDelete(have.backends, c.backends);
      setOrDelete(have.revNats, c.revNats);
    }
  }

  private reset(): void {
    this.byInputKey.clear();
    this.byIdentity.clear();
    this.uses.clear();
    this.listed = [];
    this.ids = restoreIds(this.mirror);
    this.sweep = true;
  }
}

function setOrDelete<K, V>(table: Map<K, V>, changes: Map<K, V | null>): void {
  for (const [k, v] of changes) {
    if (v === null) table.delete(k);
    else table.set(k, v);
  }
}
