/**
 * Pure decisions of the datapath: desired services → the fewest map writes that make the maps
 * (mirrored as a MapState) mean them, encoded straight into the buffers the batch syscalls take.
 *
 * Incremental: each service's last applied input is cached with what it compiled to, so a
 * reconcile compares each service with its cached input (a few field compares) and only
 * validates, assigns IDs, lays out and diffs the services that changed, appeared or went away
 * (and the backends and reverse-NAT entries they touch). The first plan of a Planner sweeps
 * everything the maps hold, so leftovers from before a restart or a failed write go away.
 *
 * Cheap where it counts: a full sync of 30k services × 4 backends handles 120k backend listings,
 * so a backend is no object but a row of typed arrays indexed by its ID (IDs are dense: they
 * index the kernel's backend array), a listing is a position in two columns all services share
 * (ListingColumns), and a backend's value is encoded once, into the batch buffer, and compared
 * there with the bytes the kernel holds (lib/datapath/state.ts ArrayMirror), into which, in the
 * agent, it is then stored.
 */
import { PROTO_NUMBER, STATE_NUMBER, constants } from './codecs.js';
import { addArrayClear, addBackendEntry, addRevNatEntry, addServiceHead, addServiceKey, addServiceSlot, familyBuffers, type EntryBuffer, type FamilyBuffers } from './encode.js';
import { ipv4Number, type IpFamily } from '../net/ip.js';
import { canonicalIp } from './ip.js';
import { layoutSlots } from './slots.js';
import { ABSENT_SLOT, FAMILIES, endpointKey, ipv4EndpointKey, ipv4Key, ipv4ProtoBit, restoreIds, type Address, type EndpointKey, type FrontendValue, type Ids, type MapState } from './state.js';
import type { BackendState, DatapathService } from './types.js';

const MAX_PORT = 65535;
const MAX_SLOTS = 65535; // backend_slot and count are __u16
const MAX_CLUSTER_ID = 65535; // cluster_id is __u16

/** When services disagree about a backend, the backend map records the least available state. */
const STATE_SEVERITY: Record<BackendState, number> = { active: 0, terminating: 1, maintenance: 2, quarantined: 3 };
const SEVERITIES = 4;
const SEVERITY_OF_STATE: number[] = [];
const STATE_OF_SEVERITY: number[] = [];
for (const [state, severity] of Object.entries(STATE_SEVERITY) as [BackendState, number][]) {
  SEVERITY_OF_STATE[STATE_NUMBER[state]] = severity;
  STATE_OF_SEVERITY[severity] = STATE_NUMBER[state];
}

// A listing's port, cluster ID and state number in one number: port + cluster·2^16 + state·2^32.
const TWO_16 = 65536;
const TWO_32 = 4294967296;
const packListing = (port: number, clusterId: number, state: number) => port + clusterId * TWO_16 + state * TWO_32;
const listedState = (packed: number) => Math.floor(packed / TWO_32);
const listedCluster = (packed: number) => Math.floor((packed % TWO_32) / TWO_16);

// ---- validation ---------------------------------------------------------------------------------

/** STATE_NUMBER[state], undefined for no state: string compares, cheaper than a keyed lookup 120k times a full sync. */
function stateNumber(state: string): number | undefined {
  switch (state) {
    case 'active': return STATE_NUMBER.active;
    case 'terminating': return STATE_NUMBER.terminating;
    case 'quarantined': return STATE_NUMBER.quarantined;
    case 'maintenance': return STATE_NUMBER.maintenance;
    default: return undefined;
  }
}

/** One service as last planned: its validated input (as listed, to compare) and what it compiled to. */
interface CachedService {
  vip: string;
  port: number;
  proto: DatapathService['proto'];
  family: IpFamily;
  key: EndpointKey;
  vipAddress: Address;
  protoNumber: number;
  /** where its listed backends start in the planner's ListingColumns (in input order; as many as backendIds) */
  first: number;
  /** per listed backend: its ID (set when admitted) */
  backendIds: number[];
  frontend?: FrontendValue;
  /** the plan generation that last listed it */
  seen: number;
}

const inputKeyOf = (s: Pick<DatapathService, 'vip' | 'port' | 'proto'>) => `${s.vip}|${s.port}|${s.proto}`;

const validPort = (port: number) => Number.isInteger(port) && port >= 1 && port <= MAX_PORT;
const portError = (what: string, port: number) => new Error(`${what}: port ${port} is not in 1..${MAX_PORT}`);
// names of the culprit, only built for an error: validation runs for 120k backends in a full sync
const serviceName = (s: DatapathService) => `service ${s.vip}:${s.port}/${s.proto}`;
const backendName = (s: DatapathService, b: DatapathService['backends'][number]) => `${serviceName(s)}: backend ${b.addr}:${b.port}`;

/** Validates one service and keys its addresses into `columns`. Throws one line naming the culprit. */
function normalizeService(service: DatapathService, seen: number, columns: ListingColumns): CachedService {
  // a plain dotted quad (nearly every VIP) is its own canonical text and needs no bytes
  const v4vip = ipv4Number(service.vip);
  const vip = v4vip >= 0 ? undefined : canonicalIp(service.vip, `${serviceName(service)}: vip`);
  const family = vip ? vip.family : 4;
  if (!validPort(service.port)) throw portError(serviceName(service), service.port);
  const proto = PROTO_NUMBER[service.proto];
  if (proto === undefined) throw new Error(`${serviceName(service)}: protocol must be TCP or UDP`);
  const n = service.backends.length;
  if (n > MAX_SLOTS) throw new Error(`${serviceName(service)}: more than ${MAX_SLOTS} backends`);
  const first = columns.append(n);
  const { addrs, packed, keys } = columns;
  const protoBit = ipv4ProtoBit(proto);
  for (let i = 0; i < n; i++) {
    const b = service.backends[i];
    if (!validPort(b.port)) throw portError(backendName(service, b), b.port);
    const state = stateNumber(b.state);
    if (state === undefined) throw new Error(`${backendName(service, b)}: unknown state "${b.state}"`);
    if (!Number.isInteger(b.clusterId) || b.clusterId < 0 || b.clusterId > MAX_CLUSTER_ID) {
      throw new Error(`${backendName(service, b)}: clusterId ${b.clusterId} is not in 0..${MAX_CLUSTER_ID}`);
    }
    // a plain dotted quad (nearly every backend) is keyed without allocating: a number straight
    // into the float column (through a variable that may hold a string too, it would be boxed)
    const v4 = family === 4 && protoBit >= 0 ? ipv4Number(b.addr) : -1;
    if (v4 >= 0) keys[first + i] = ipv4Key(v4, b.port, protoBit);
    else keyByText(service, b, family, proto, columns, first + i);
    addrs[first + i] = b.addr;
    packed[first + i] = packListing(b.port, b.clusterId, state);
  }
  return {
    vip: service.vip,
    port: service.port,
    proto: service.proto,
    family,
    key: vip ? endpointKey(vip, service.port, proto) : (ipv4EndpointKey(v4vip, service.port, proto) as number), // TCP or UDP: a number
    vipAddress: vip ? vip.bytes : v4vip,
    protoNumber: proto,
    first,
    backendIds: new Array<number>(n),
    seen,
  };
}

/** The key of a backend whose address is not a plain dotted quad (IPv6, or spelled otherwise), at `at` of `columns`. */
function keyByText(service: DatapathService, b: DatapathService['backends'][number], family: IpFamily, proto: number, columns: ListingColumns, at: number): void {
  const addr = canonicalIp(b.addr, () => backendName(service, b));
  if (addr.family !== family) throw new Error(`${backendName(service, b)}: address family differs from the vip's`);
  const key = endpointKey(addr, b.port, proto);
  if (typeof key === 'number') columns.keys[at] = key;
  else {
    columns.keys[at] = NaN;
    columns.stringKeys.set(at, key);
  }
}

const listedTwice = (s: CachedService) => new Error(`service ${s.vip}:${s.port}/${s.proto} is listed twice`);

function sameFrontend(a: CachedService, b: DatapathService): boolean {
  return a.vip === b.vip && a.port === b.port && a.proto === b.proto;
}

/** Structural compare: true when `input` is what `cached` was planned from (so it plans the same). */
function sameInput(cached: CachedService, input: DatapathService, columns: ListingColumns): boolean {
  const backends = input.backends;
  if (!sameFrontend(cached, input) || cached.backendIds.length !== backends.length) return false;
  const { addrs, packed } = columns;
  for (let i = 0; i < backends.length; i++) {
    const b = backends[i];
    const at = cached.first + i;
    if (addrs[at] !== b.addr || packed[at] !== packListing(b.port, b.clusterId, stateNumber(b.state) ?? NaN)) return false; // NaN: normalizeService refuses it
  }
  return true;
}

// ---- listings: two columns for every cached service ----------------------------------------------

const INITIAL_ROWS = 1024;

/**
 * What the cached services listed, per backend: the address as listed and packListing(), in
 * columns all of them share (service s holds positions s.first .. s.first + its count − 1), not
 * in arrays of their own: a full sync lists 120k backends, and 30k × 3 small arrays, all of them
 * surviving, were most of what the garbage collector copied. Positions are appended; compact()
 * drops the ones no cached service holds any more. `keys` holds a position's EndpointKey only
 * during the plan that appended it (NaN: a string key, in stringKeys).
 */
export class ListingColumns {
  addrs: string[] = [];
  packed = new Float64Array(INITIAL_ROWS);
  keys = new Float64Array(INITIAL_ROWS);
  readonly stringKeys = new Map<number, string>();
  length = 0;

  /** Room for `count` more listings; returns the first position. */
  append(count: number): number {
    const first = this.length;
    this.length += count;
    if (this.length > this.packed.length) {
      let rows = this.packed.length;
      while (rows < this.length) rows *= 2;
      this.packed = grownTo(this.packed, rows);
      this.keys = grownTo(this.keys, rows);
    }
    return first;
  }

  key(at: number): EndpointKey {
    const key = this.keys[at];
    return Number.isNaN(key) ? this.stringKeys.get(at)! : key;
  }

  /** Forgets the positions from `length` on (a plan whose input was refused). */
  truncate(length: number): void {
    this.length = length;
    this.addrs.length = Math.min(this.addrs.length, length);
  }

  /** Keeps only the positions `services` hold, once at least half of the columns is garbage. */
  compact(services: readonly Pick<CachedService, 'first' | 'backendIds'>[]): void {
    let live = 0;
    for (const s of services) live += s.backendIds.length;
    if (this.length < INITIAL_ROWS || this.length < 2 * live) return;
    const addrs: string[] = [];
    const packed = new Float64Array(Math.max(INITIAL_ROWS, 2 * live));
    for (const s of services) {
      const at = addrs.length;
      for (let i = 0; i < s.backendIds.length; i++) {
        addrs.push(this.addrs[s.first + i]);
        packed[at + i] = this.packed[s.first + i];
      }
      s.first = at;
    }
    this.addrs = addrs;
    this.packed = packed;
    this.keys = new Float64Array(packed.length);
    this.length = live;
  }
}

// ---- backends: one row of typed arrays per ID ----------------------------------------------------

function grownTo<T extends Uint8Array | Uint16Array | Uint32Array | Float64Array>(array: T, length: number): T {
  const bigger = new (array.constructor as new (n: number) => T)(length);
  bigger.set(array);
  return bigger;
}

/**
 * Every backend with an ID: what identifies it (address, port, protocol), and its listings
 * counted by state severity and cluster, from which its map value follows. Rows are indexed by
 * backend ID and grow on demand.
 */
class BackendTable {
  private rows = INITIAL_ROWS;
  listings = new Uint32Array(INITIAL_ROWS);
  /** listings per state severity: SEVERITIES per row */
  private bySeverity = new Uint32Array(INITIAL_ROWS * SEVERITIES);
  /** the lowest cluster ID of its listings */
  private cluster = new Uint16Array(INITIAL_ROWS);
  family = new Uint8Array(INITIAL_ROWS);
  private port = new Uint16Array(INITIAL_ROWS);
  private proto = new Uint8Array(INITIAL_ROWS);
  /** IPv4 address as a number */
  private addr4 = new Uint32Array(INITIAL_ROWS);
  /** the rare rows that are not IPv4 TCP/UDP: address bytes, and the string key */
  private readonly addr6 = new Map<number, Uint8Array>();
  private readonly otherKeys = new Map<number, string>();
  /** listings per cluster, only for the rare backend listed with different cluster IDs */
  private readonly clusters = new Map<number, Map<number, number>>();

  /** Takes row `id` for the backend keyed `key` (`addr`: its address as listed, for non-numeric keys). */
  open(id: number, key: EndpointKey, family: IpFamily, addr: string, port: number, proto: number): void {
    if (id >= this.rows) this.grow(id);
    this.family[id] = family;
    this.port[id] = port;
    this.proto[id] = proto;
    if (typeof key === 'number') this.addr4[id] = Math.floor(key / 131072);
    else {
      this.otherKeys.set(id, key);
      if (family === 6) this.addr6.set(id, canonicalIp(addr, 'backend address').bytes);
      else this.addr4[id] = ipv4Number(canonicalIp(addr, 'backend address').text);
    }
  }

  /** Frees row `id` (no listing left); returns the key its ID was held under. */
  close(id: number): EndpointKey {
    const key = this.otherKeys.get(id) ?? this.addr4[id] * 131072 + this.port[id] * 2 + (this.proto[id] === constants.CM_PROTO_UDP ? 1 : 0);
    this.otherKeys.delete(id);
    this.addr6.delete(id);
    this.family[id] = 0;
    return key;
  }

  list(id: number, listing: number): void {
    const cluster = listedCluster(listing);
    const n = this.listings[id]++;
    this.bySeverity[id * SEVERITIES + SEVERITY_OF_STATE[listedState(listing)]]++;
    if (n === 0) {
      this.cluster[id] = cluster;
      return;
    }
    const mixed = this.clusters.get(id);
    if (mixed) mixed.set(cluster, (mixed.get(cluster) ?? 0) + 1);
    else if (cluster !== this.cluster[id]) this.clusters.set(id, new Map([[this.cluster[id], n], [cluster, 1]]));
    if (cluster < this.cluster[id]) this.cluster[id] = cluster;
  }

  unlist(id: number, listing: number): void {
    this.listings[id]--;
    this.bySeverity[id * SEVERITIES + SEVERITY_OF_STATE[listedState(listing)]]--;
    const mixed = this.clusters.get(id);
    if (!mixed) return;
    const cluster = listedCluster(listing);
    const left = mixed.get(cluster)! - 1;
    if (left > 0) mixed.set(cluster, left);
    else mixed.delete(cluster);
    this.cluster[id] = Math.min(...mixed.keys());
    if (mixed.size === 1) this.clusters.delete(id);
  }

  /** Rows for IDs below `rows`, made at once. */
  reserve(rows: number): void {
    if (rows > this.rows) this.grow(rows - 1);
  }

  /** Appends the backend's map value (least available state, lowest cluster) to `out`; returns its offset. */
  encode(out: EntryBuffer, id: number): number {
    let severity = SEVERITIES - 1;
    while (severity > 0 && this.bySeverity[id * SEVERITIES + severity] === 0) severity--;
    const family = this.family[id] as IpFamily;
    const addr: Address = family === 4 ? this.addr4[id] : this.addr6.get(id)!;
    return addBackendEntry(out, family, id, addr, this.port[id], this.proto[id], STATE_OF_SEVERITY[severity], this.cluster[id]);
  }

  private grow(id: number): void {
    let rows = this.rows;
    while (rows <= id) rows *= 2;
    this.listings = grownTo(this.listings, rows);
    this.bySeverity = grownTo(this.bySeverity, rows * SEVERITIES);
    this.cluster = grownTo(this.cluster, rows);
    this.family = grownTo(this.family, rows);
    this.port = grownTo(this.port, rows);
    this.proto = grownTo(this.proto, rows);
    this.addr4 = grownTo(this.addr4, rows);
    this.rows = rows;
  }
}

/** IDs (backend IDs, rev NAT indexes) a plan touches, each once. */
class Touched {
  /** ids[0..count) */
  ids = new Uint32Array(INITIAL_ROWS);
  count = 0;
  private mark = new Uint8Array(INITIAL_ROWS);

  add(id: number): void {
    if (id >= this.mark.length) this.mark = grownTo(this.mark, Math.max(id + 1, this.mark.length * 2));
    if (this.mark[id] === 1) return;
    this.mark[id] = 1;
    if (this.count === this.ids.length) this.ids = grownTo(this.ids, this.ids.length * 2);
    this.ids[this.count++] = id;
  }

  clear(): void {
    for (let i = 0; i < this.count; i++) this.mark[this.ids[i]] = 0;
    this.count = 0;
  }
}

/** A new frontend's previous slots: none (one array for all of them). */
const NO_SLOTS: readonly number[] = [];

/**
 * compileFrontend's scratch: layoutSlots only reads it, and only its first backendIds.length
 * entries (so it is never shortened): 30k arrays less per full sync.
 */
const active: boolean[] = [];

function compileFrontend(s: CachedService, packed: Float64Array, revNat: number, previous: readonly number[]): FrontendValue {
  const n = s.backendIds.length;
  let remote = false;
  for (let i = 0; i < n; i++) {
    active[i] = listedState(packed[s.first + i]) === constants.CM_BACKEND_ACTIVE;
    remote ||= listedCluster(packed[s.first + i]) !== 0;
  }
  const layout = layoutSlots(s.backendIds, active, previous);
  return {
    family: s.family,
    vip: s.vipAddress,
    port: s.port,
    proto: s.protoNumber,
    hasHead: true,
    count: layout.count,
    revNat,
    flags: remote ? constants.CM_SVC_FLAG_REMOTE_BACKENDS : constants.CM_SVC_FLAG_NONE,
    slots: layout.slots,
    odd: false,
  };
}

// ---- diff ---------------------------------------------------------------------------------------

const INLINE_BACKENDS = constants.CM_LB_INLINE_BACKENDS;

/** Deletes the entries `old` has for slots from + 1 on (only slots beyond the inline ones have entries). */
function deleteEntriesFrom(old: FrontendValue, from: number, out: EntryBuffer): void {
  for (let i = Math.max(from, INLINE_BACKENDS); i < old.slots.length; i++) if (old.slots[i] !== ABSENT_SLOT) addServiceKey(out, old, i + 1);
}

/** True when slot 0 of `want` holds other inline backends than slot 0 of `old`. */
function inlineChanged(old: readonly number[], want: readonly number[]): boolean {
  const n = Math.min(INLINE_BACKENDS, Math.max(old.length, want.length));
  for (let i = 0; i < n; i++) if ((old[i] ?? constants.CM_BACKEND_ID_NONE) !== (want[i] ?? constants.CM_BACKEND_ID_NONE)) return true;
  return false;
}

function diffFrontend(want: FrontendValue | null, old: FrontendValue | undefined, out: FamilyBuffers): void {
  if (old?.strays) for (const slot of old.strays) addServiceKey(out.slotDeletes, old, slot);
  if (!want) {
    if (!old) return;
    if (old.hasHead) addServiceKey(out.headDeletes, old, constants.CM_SERVICE_SLOT);
    deleteEntriesFrom(old, 0, out.slotDeletes);
    return;
  }
  const rewriteAll = !old || old.odd;
  for (let i = INLINE_BACKENDS; i < want.slots.length; i++) {
    if (rewriteAll || old.slots[i] !== want.slots[i]) addServiceSlot(out.slotUpdates, want, i + 1, want.slots[i]);
  }
  if (old) deleteEntriesFrom(old, want.slots.length, out.slotDeletes);
  if (rewriteAll || old.count !== want.count || old.revNat !== want.revNat || old.flags !== want.flags || inlineChanged(old.slots, want.slots)) {
    addServiceHead(out.headUpdates, want);
  }
}

// ---- the planner --------------------------------------------------------------------------------

export interface Plan {
  /**
   * Packed writes in the order that never lets a reader meet a dangling reference: reverse NAT
   * and backends exist before a slot names them; the entries of slots beyond the inline ones are
   * filled before slot 0 raises `count`; slot 0 goes before the entries behind it, and backends
   * and reverse NAT are cleared last. The buffers are the planner's own and hold until its next
   * plan.
   */
  steps: EntryBuffer[];
  /** entries written with a value */
  updates: number;
  /** entries removed: deleted from the service hash, or cleared to zero in the arrays */
  deletes: number;
  /** Call once every step is in the maps: the mirror then holds what they hold. */
  commit(): void;
}

export class Planner {
  private readonly buffers = { 4: familyBuffers(4), 6: familyBuffers(6) };
  private ids!: Ids;
  private backends!: BackendTable;
  /** the service holding each rev NAT index */
  private byRevNat: (CachedService | undefined)[] = [];
  private readonly touchedBackends = new Touched();
  private readonly touchedRevNats = new Touched();
  /** frontends a plan touches and what they should hold (null: nothing), each once */
  private readonly touchedFrontendKeys: EndpointKey[] = [];
  private readonly touchedFrontendWants: (FrontendValue | null)[] = [];
  private generation = 0;
  private sweep = true;
  /** the services of the previous plan, in the order they were listed */
  private listed: CachedService[] = [];
  /** what they listed */
  private columns!: ListingColumns;

  /** `mirror` is what the maps hold now; the planner keeps it current through commit(). */
  constructor(private readonly mirror: MapState) {
    this.reset();
  }

  get backendCount(): number {
    return this.ids.backends.size;
  }

  /** The writes that make the maps mean `desired`. Bad input throws before anything changes. */
  plan(desired: readonly DatapathService[]): Plan {
    const { fresh, listed } = this.changedServices(desired);
    try {
      this.touchedBackends.clear();
      this.touchedRevNats.clear();
      this.touchedFrontendKeys.length = 0;
      this.touchedFrontendWants.length = 0;
      if (this.sweep) this.touchEverything();
      if (listed.length - fresh.length < this.listed.length) this.retire(fresh);
      this.admit(fresh);
      if (this.sweep) this.dropUnwanted();
      this.sweep = false;
      this.listed = listed;
      const plan = this.diff();
      this.columns.compact(listed);
      return plan;
    } catch (error) {
      this.reset(); // e.g. out of IDs: nothing was written, so start over from the mirror
      throw error;
    }
  }

  /**
   * Validates what is new or changed and finds listings twice; changes nothing but `seen` (and
   * appends the listings of the new and changed services, dropped again when it throws).
   * A service is first looked for where it was in the previous list (callers keep their order),
   * then by its frontend.
   */
  private changedServices(desired: readonly DatapathService[]): { fresh: CachedService[]; listed: CachedService[] } {
    const generation = ++this.generation;
    const fresh: CachedService[] = [];
    const listed: CachedService[] = [];
    const appendedFrom = this.columns.length;
    this.columns.stringKeys.clear();
    try {
      this.listChanges(desired, generation, fresh, listed);
    } catch (error) {
      this.columns.truncate(appendedFrom); // refused input leaves no listings behind
      throw error;
    }
    return { fresh, listed };
  }

  private listChanges(desired: readonly DatapathService[], generation: number, fresh: CachedService[], listed: CachedService[]): void {
    let byInput: Map<string, CachedService> | undefined; // built at the first service not where it was
    for (let i = 0; i < desired.length; i++) {
      const s = desired[i];
      const hint = this.listed[i];
      let cached = hint && sameFrontend(hint, s) ? hint : undefined;
      if (!cached && this.listed.length > 0) {
        byInput ??= new Map(this.listed.map((c) => [inputKeyOf(c), c]));
        cached = byInput.get(inputKeyOf(s));
      }
      if (cached && cached.seen !== generation && sameInput(cached, s, this.columns)) {
        cached.seen = generation;
        listed.push(cached);
        continue;
      }
      const entry = normalizeService(s, generation, this.columns);
      fresh.push(entry);
      listed.push(entry);
    }
    // twice among the fresh ones is found when they are admitted
    for (const f of fresh) if (this.serviceWith(f.key)?.seen === generation) throw listedTwice(f);
  }

  private touchFrontend(key: EndpointKey, want: FrontendValue | null): void {
    this.touchedFrontendKeys.push(key);
    this.touchedFrontendWants.push(want);
  }

  /** The service planned under `key`, if any. */
  private serviceWith(key: EndpointKey): CachedService | undefined {
    const revNat = this.ids.services.get(key);
    return revNat === undefined ? undefined : this.byRevNat[revNat];
  }

  /** First plan over restored maps: every backend and rev NAT entry they hold is looked at again. */
  private touchEverything(): void {
    for (const family of FAMILIES) {
      for (const id of this.mirror.backends[family].used()) this.touchedBackends.add(id);
      for (const index of this.mirror.revNats[family].used()) this.touchedRevNats.add(index);
    }
  }

  /** After a sweep: frontends the maps hold that nobody wants go, and their restored IDs are free again. */
  private dropUnwanted(): void {
    for (const key of this.mirror.frontends.keys()) {
      if (this.serviceWith(key)) continue;
      this.touchFrontend(key, null);
      this.ids.services.release(key);
    }
  }

  /** Drops the services not listed this time (or changed), their IDs and backend listings. */
  private retire(fresh: CachedService[]): void {
    const staying = new Set(fresh.map((f) => f.key));
    for (const old of this.listed) {
      if (old.seen === this.generation) continue;
      for (let i = 0; i < old.backendIds.length; i++) {
        this.backends.unlist(old.backendIds[i], this.columns.packed[old.first + i]);
        this.touchedBackends.add(old.backendIds[i]);
      }
      if (staying.has(old.key)) continue;
      this.touchFrontend(old.key, null);
      const revNat = this.ids.services.get(old.key);
      if (revNat === undefined) continue;
      this.byRevNat[revNat] = undefined;
      this.touchedRevNats.add(revNat);
      this.ids.services.release(old.key);
    }
  }

  /** Gives the new and changed services IDs, backend listings and compiled entries. */
  private admit(fresh: CachedService[]): void {
    const ids = this.ids.backends;
    const columns = this.columns;
    let listings = 0;
    for (let f = 0; f < fresh.length; f++) listings += fresh[f].backendIds.length;
    // room for the most this can add, made once (a full sync adds 120k backends)
    ids.reserve(ids.size + listings);
    this.backends.reserve(ids.size + listings + 1);
    // index loops: this runs once per plan, mostly before it is optimized, where an iterator
    // allocates a result per service
    for (let f = 0; f < fresh.length; f++) {
      const s = fresh[f];
      const revNat = this.ids.services.acquire(s.key);
      if (this.byRevNat[revNat]?.seen === this.generation) throw listedTwice(s);
      for (let i = 0; i < s.backendIds.length; i++) {
        const at = s.first + i;
        const key = columns.key(at);
        let id = ids.get(key);
        if (id === undefined) {
          id = ids.allocate(key);
          this.backends.open(id, key, s.family, columns.addrs[at], columns.packed[at] % TWO_16, s.protoNumber);
        }
        this.backends.list(id, columns.packed[at]);
        this.touchedBackends.add(id);
        s.backendIds[i] = id;
      }
      s.frontend = compileFrontend(s, columns.packed, revNat, this.mirror.frontends.get(s.key)?.slots ?? NO_SLOTS);
      this.byRevNat[revNat] = s;
      this.touchFrontend(s.key, s.frontend);
      this.touchedRevNats.add(revNat);
    }
  }

  private diff(): Plan {
    for (const family of FAMILIES) {
      const b = this.buffers[family];
      for (const buffer of Object.values(b)) buffer.count = 0;
      // sized once for the most this plan can write, not grown entry by entry
      b.backendUpdates.reserve(this.touchedBackends.count);
      b.revNatUpdates.reserve(this.touchedRevNats.count);
      b.headUpdates.reserve(this.touchedFrontendKeys.length);
    }
    this.diffRevNats();
    this.diffBackends();
    for (let i = 0; i < this.touchedFrontendKeys.length; i++) {
      const want = this.touchedFrontendWants[i];
      const old = this.mirror.frontends.get(this.touchedFrontendKeys[i]);
      const family = want?.family ?? old?.family;
      if (family) diffFrontend(want, old, this.buffers[family]);
    }
    const b4 = this.buffers[4];
    const b6 = this.buffers[6];
    const updates = [b4.revNatUpdates, b4.backendUpdates, b4.slotUpdates, b4.headUpdates, b6.revNatUpdates, b6.backendUpdates, b6.slotUpdates, b6.headUpdates];
    const deletes = [b4.headDeletes, b4.slotDeletes, b4.backendClears, b4.revNatClears, b6.headDeletes, b6.slotDeletes, b6.backendClears, b6.revNatClears];
    const total = (list: EntryBuffer[]) => list.reduce((n, b) => n + b.count, 0);
    return {
      steps: [...updates, ...deletes].filter((b) => b.count > 0),
      updates: total(updates),
      deletes: total(deletes),
      commit: () => this.apply(),
    };
  }

  /** Each touched rev NAT index holds its service's frontend in that service's family, nothing elsewhere. */
  private diffRevNats(): void {
    const touched = this.touchedRevNats;
    for (let t = 0; t < touched.count; t++) {
      const index = touched.ids[t];
      const s = this.byRevNat[index];
      for (let f = 0; f < FAMILIES.length; f++) {
        const family = FAMILIES[f]; // an index loop: an iterator per ID was 2 MB of garbage a full sync
        const out = this.buffers[family];
        const have = this.mirror.revNats[family];
        if (s && s.family === family) {
          const at = addRevNatEntry(out.revNatUpdates, family, index, s.vipAddress, s.port);
          if (have.equals(index, out.revNatUpdates.values, at)) out.revNatUpdates.count--;
        } else if (have.inUse(index)) addArrayClear(out.revNatClears, index);
      }
    }
  }

  /** A touched backend with listings holds its value; one without loses its ID and is cleared. */
  private diffBackends(): void {
    const table = this.backends;
    const touched = this.touchedBackends;
    for (let t = 0; t < touched.count; t++) {
      const id = touched.ids[t];
      const listed = table.listings[id] > 0;
      if (!listed && table.family[id] !== 0) this.ids.backends.release(table.close(id));
      for (let f = 0; f < FAMILIES.length; f++) {
        const family = FAMILIES[f]; // an index loop: an iterator per ID was 2 MB of garbage a full sync
        const out = this.buffers[family];
        const have = this.mirror.backends[family];
        if (listed && table.family[id] === family) {
          const at = table.encode(out.backendUpdates, id);
          if (have.equals(id, out.backendUpdates.values, at)) out.backendUpdates.count--;
        } else if (have.inUse(id)) addArrayClear(out.backendClears, id);
      }
    }
  }

  /** The mirror takes what the steps wrote. */
  private apply(): void {
    for (let i = 0; i < this.touchedFrontendKeys.length; i++) {
      const want = this.touchedFrontendWants[i];
      if (want) this.mirror.frontends.set(this.touchedFrontendKeys[i], want);
      else this.mirror.frontends.delete(this.touchedFrontendKeys[i]);
    }
    for (const family of FAMILIES) {
      const b = this.buffers[family];
      for (const [step, mirror] of [
        [b.backendUpdates, this.mirror.backends[family]],
        [b.backendClears, this.mirror.backends[family]],
        [b.revNatUpdates, this.mirror.revNats[family]],
        [b.revNatClears, this.mirror.revNats[family]],
      ] as const) {
        if (mirror.mapped) continue; // the map's own memory: the step wrote it
        for (let i = 0; i < step.count; i++) mirror.set(step.keys.readUInt32LE(i * step.keySize), step.values, i * step.valueSize);
      }
    }
  }

  /** Forgets every cached service and starts over from the mirror (the next plan sweeps). */
  private reset(): void {
    this.listed = [];
    this.columns = new ListingColumns();
    this.byRevNat = [];
    this.ids = restoreIds(this.mirror);
    this.backends = new BackendTable();
    for (const family of FAMILIES) {
      for (const [key, id] of this.ids.backends.entries()) this.restoreRow(id, key, family);
    }
    this.sweep = true;
  }

  /** A restored ID's row (no listings yet), so that the sweep can release it. */
  private restoreRow(id: number, key: EndpointKey, family: IpFamily): void {
    if (!this.mirror.backends[family].inUse(id)) return;
    if (typeof key === 'number') this.backends.open(id, key, 4, '', Math.floor(key / 2) % TWO_16, key % 2 === 1 ? constants.CM_PROTO_UDP : constants.CM_PROTO_TCP);
    else {
      const [, addr, port, proto] = key.split('|');
      this.backends.open(id, key, family, addr, Number(port), Number(proto));
    }
  }
}
