/** Pure datapath decisions: slot layout, IDs, addresses, and the incremental planner (no kernel needed). */
import { codecs, constants } from '../../lib/datapath/codecs.js';
import type { EntryBuffer } from '../../lib/datapath/encode.js';
import { IdAllocator } from '../../lib/datapath/ids.js';
import { canonicalIp } from '../../lib/datapath/ip.js';
import { formatIp, ipv4Number, parseIp, requireIp } from '../../lib/net/ip.js';
import { ListingColumns, Planner } from '../../lib/datapath/plan.js';
import { EndpointIndex } from '../../lib/datapath/endpoint-index.js';
import { layoutSlots } from '../../lib/datapath/slots.js';
import { ArrayMirror, FrontendTable, MANAGED_MAPS, decodeMaps, endpointKey, servicesOf, type FrontendValue, type ManagedMap, type MapState, type PackedEntries } from '../../lib/datapath/state.js';
import type { DatapathBackend, DatapathService } from '../../lib/datapath/types.js';

interface SlotCandidate {
  backendId: number;
  state: DatapathBackend['state'];
}
const a = (backendId: number): SlotCandidate => ({ backendId, state: 'active' });
const q = (backendId: number): SlotCandidate => ({ backendId, state: 'quarantined' });
const layout = (candidates: SlotCandidate[], previous?: number[]) =>
  layoutSlots(candidates.map((c) => c.backendId), candidates.map((c) => c.state === 'active'), previous);

describe('layoutSlots', () => {
  it.each<[string, SlotCandidate[], { count: number; slots: number[] }]>([
    ['no backends', [], { count: 0, slots: [] }],
    ['all active, by ID', [a(3), a(1)], { count: 2, slots: [1, 3] }],
    ['active first, then the rest', [q(1), a(2), { backendId: 3, state: 'terminating' }, a(4)], { count: 2, slots: [2, 4, 1, 3] }],
    ['none active', [{ backendId: 5, state: 'maintenance' }, { backendId: 2, state: 'terminating' }], { count: 0, slots: [2, 5] }],
    ['a duplicate keeps its first state', [a(1), q(1)], { count: 1, slots: [1] }],
  ])('%s', (_name, candidates, expected) => {
    expect(layout(candidates)).toEqual(expected);
  });
});

describe('layoutSlots keeps the slots of backends that stay', () => {
  it.each<[string, number[], SlotCandidate[], { count: number; slots: number[] }, number]>([
    ['a replaced backend takes the freed slot', [1, 2, 3, 4], [a(2), a(3), a(4), a(5)], { count: 4, slots: [5, 2, 3, 4] }, 1],
    ['a new backend appends', [1, 2], [a(1), a(2), a(3)], { count: 3, slots: [1, 2, 3] }, 1],
    ['a removed backend\'s slot goes to the last one', [1, 2, 3, 4], [a(1), a(3), a(4)], { count: 3, slots: [1, 4, 3] }, 1],
    ['a backend going inactive moves behind the active ones', [1, 2, 3], [q(1), a(2), a(3)], { count: 2, slots: [3, 2, 1] }, 2],
    ['an inactive backend turning active moves in front', [2, 3, 1], [a(1), a(2), a(3)], { count: 3, slots: [2, 3, 1] }, 0],
    ['two replaced at once fill the free slots by ID', [1, 2, 3, 4], [a(9), a(2), a(8), a(4)], { count: 4, slots: [8, 2, 9, 4] }, 2],
    ['holes and unknown IDs in the previous layout are ignored', [-1, 7], [a(1), a(2)], { count: 2, slots: [1, 2] }, 2],
    ['an unchanged layout stays as it is, not sorted', [4, 1, 3], [a(1), a(3), a(4)], { count: 3, slots: [4, 1, 3] }, 0],
  ])('%s', (_name, previous, candidates, expected, movedSlots) => {
    const laid = layout(candidates, previous);
    expect(laid).toEqual(expected);
    expect(laid.slots.filter((id, i) => previous[i] !== id).length).toBe(movedSlots);
  });
});

describe('IdAllocator', () => {
  it('keeps IDs, restores them, never hands out a just-freed ID before wrapping', () => {
    const ids = new IdAllocator('test', 4, [['a', 2]]);
    expect(ids.acquire('a')).toBe(2);
    expect(ids.acquire('b')).toBe(3);
    ids.release('a');
    expect(ids.acquire('c')).toBe(4);
    expect(ids.acquire('d')).toBe(1); // wrapped
    expect(ids.acquire('e')).toBe(2); // freed long ago
    expect(() => ids.acquire('f')).toThrow('out of test IDs: at most 4 can exist at once');
    ids.release('c');
    expect(ids.get('c')).toBeUndefined();
    expect(ids.acquire('f')).toBe(4);
  });
});

describe('endpointKey', () => {
  const key = (addr: string, port: number, proto: number) => endpointKey(canonicalIp(addr, 'x'), port, proto);

  it('gives every IPv4 TCP/UDP address, port and protocol its own number, extremes included', () => {
    const addrs = ['0.0.0.0', '0.0.0.1', '10.200.1.1', '10.200.1.2', '255.255.255.254', '255.255.255.255'];
    const keys = addrs.flatMap((addr) => [1, 2, 65534, 65535].flatMap((port) => [constants.CM_PROTO_TCP, constants.CM_PROTO_UDP].map((proto) => key(addr, port, proto))));
    expect(keys.every((k) => Number.isSafeInteger(k))).toBe(true);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('keys IPv6 and other protocols by canonical text, never equal to a number', () => {
    expect(key('FD99:200::1', 80, constants.CM_PROTO_TCP)).toBe(key('fd99:200:0::1', 80, constants.CM_PROTO_TCP));
    expect(typeof key('fd99:200::1', 80, constants.CM_PROTO_TCP)).toBe('string');
    expect(typeof key('10.200.1.1', 80, 132)).toBe('string');
  });
});

describe('ip', () => {
  it.each([
    ['10.200.0.1', '10.200.0.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['FD99:200:0:0::1', 'fd99:200::1'],
    ['fd99:0:0:1:0:0:0:1', 'fd99:0:0:1::1'],
    ['::ffff:10.0.0.1', '::ffff:a00:1'],
    ['::', '::'],
  ])('%s is %s', (text, canonical) => {
    expect(formatIp(requireIp(text, 'x').bytes)).toBe(canonical);
    expect(canonicalIp(text, 'x').text).toBe(canonical);
    expect(canonicalIp(text, 'x').bytes).toEqual(requireIp(text, 'x').bytes);
  });

  it.each(['10.0.0.300', '10.0.0', '1.2.3.4.5', '01.2.3.4', '1..2.3', '1.2.3.4 ', ''])('rejects "%s" in one line', (text) => {
    expect(() => canonicalIp(text, 'service vip')).toThrow(`service vip: "${text}" is not an IPv4 or IPv6 address`);
  });
});

describe('ipv4Number', () => {
  it.each(['10.200.0.1', '0.0.0.0', '255.255.255.255', '10.0.0.300', '10.0.0', '1.2.3.4.5', '01.2.3.4', '1..2.3', '1.2.3.4 ', '', '::ffff:10.0.0.1', '1.2.3.-4'])(
    '"%s": the number of exactly the addresses lib/net/ip.ts reads as IPv4',
    (text) => {
      const parsed = parseIp(text);
      const expected = parsed?.family === 4 ? Buffer.from(parsed.bytes).readUInt32BE() : -1;
      expect(ipv4Number(text)).toBe(expected);
    },
  );
});

describe('EndpointIndex', () => {
  it('keeps every key apart through growth and deletes in the middle of probe runs, like a Map', () => {
    const index = new EndpointIndex();
    const model = new Map<number | string, number>();
    // addresses that differ only in the port or protocol bit, extremes of both halves, and strings
    const keys: (number | string)[] = [];
    for (let i = 0; i < 5000; i++) keys.push((0x0a000000 + (i >> 2)) * 131072 + (i & 3) * 2 + (i & 1));
    keys.push(0, 131071, 0xffffffff * 131072 + 131071, '6|fd99::1|80|6', '6|fd99::2|80|6');
    keys.forEach((k, id) => {
      index.set(k, id + 1);
      model.set(k, id + 1);
    });
    index.reserve(50_000); // one rehash into room for 50k: every key stays found
    expect(keys.map((k) => index.get(k))).toEqual(keys.map((k) => model.get(k)));
    keys.forEach((k, i) => {
      if (i % 3 === 0) expect(index.delete(k)).toBe(model.delete(k));
    });
    expect(index.delete(keys[0])).toBe(false);
    index.set(keys[1], 77);
    model.set(keys[1], 77);
    expect(keys.map((k) => index.get(k))).toEqual(keys.map((k) => model.get(k)));
    expect(index.size).toBe(model.size);
    expect(new Map(index.entries())).toEqual(model);
  });
});

describe('FrontendTable', () => {
  it('works like a Map of EndpointKey (numbers above 2^31 and strings), reusing the places of deleted keys', () => {
    const table = new FrontendTable();
    const model = new Map<number | string, FrontendValue>();
    const value = (port: number) => ({ port }) as FrontendValue;
    const keys: (number | string)[] = [0x0ac80001 * 131072 + 160, 0xffffffff * 131072 + 131071, 0, '6|fd99::1|80|6'];
    keys.forEach((k, i) => (table.set(k, value(i)), model.set(k, value(i))));
    expect([table.delete(keys[0]), table.delete(keys[0]), table.delete('6|fd99::2|80|6')]).toEqual([true, false, false]);
    model.delete(keys[0]);
    table.set(keys[2], value(9)); // replaces
    model.set(keys[2], value(9));
    table.set(77, value(77)); // takes the deleted key's place
    model.set(77, value(77));
    const sorted = <T>(xs: Iterable<T>) => [...xs].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
    expect(sorted(table)).toEqual(sorted(model));
    expect(sorted(table.keys())).toEqual(sorted(model.keys()));
    expect(sorted(table.values())).toEqual(sorted(model.values()));
    expect([table.size, keys.map((k) => table.get(k)?.port)]).toEqual([model.size, keys.map((k) => model.get(k)?.port)]);
  });
});

describe('ArrayMirror over a map\'s memory', () => {
  it('writes an entry in place at the kernel\'s 8-byte element stride, and clears it to all zero', () => {
    const { size, fields } = codecs.lb4_backend;
    const memory = new ArrayBuffer(16 * 8);
    const mirror = new ArrayMirror(size, fields.port.offset, 8, memory);
    expect([mirror.mapped, mirror.stride]).toEqual([true, 16]);
    const value = codecs.lb4_backend.encode({ address: '10.200.1.1', port: 8080, proto: 6, state: 1, cluster_id: 2 });
    const batch = Buffer.concat([Buffer.alloc(size), value]); // as a batch buffer holds it, at an offset
    mirror.set(3, batch, size);
    expect(Buffer.from(memory, 3 * 16, size)).toEqual(value);
    expect([mirror.inUse(3), mirror.equals(3, batch, size), mirror.used()]).toEqual([true, true, [3]]);
    mirror.set(3, Buffer.alloc(size), 0);
    expect(Buffer.from(memory).every((b) => b === 0)).toBe(true);
    expect(mirror.used()).toEqual([]);
  });
});

// ---- the planner against a fake kernel ------------------------------------------------------------

const INLINE = constants.CM_LB_INLINE_BACKENDS;

/** Maps that are arrays in bpf/sock_lb.c: every index exists, nothing can be deleted, all-zero = unused. */
const ARRAY_MAPS = new Set<ManagedMap>(['cm_lb4_be', 'cm_lb4_rnat', 'cm_lb6_be', 'cm_lb6_rnat']);
const FAMILY_TABLES = [
  [4, { svc: 'cm_lb4_svc', be: 'cm_lb4_be', rnat: 'cm_lb4_rnat', key: codecs.lb4_key, backend: codecs.lb4_backend, revNat: codecs.lb4_reverse_nat }],
  [6, { svc: 'cm_lb6_svc', be: 'cm_lb6_be', rnat: 'cm_lb6_rnat', key: codecs.lb6_key, backend: codecs.lb6_backend, revNat: codecs.lb6_reverse_nat }],
] as const;

/** The six maps as byte tables; applies packed steps as the kernel would and checks what a reader sees. */
class FakeKernel {
  readonly tables = Object.fromEntries(MANAGED_MAPS.map((m) => [m, new Map<string, string>()])) as Record<ManagedMap, Map<string, string>>;

  apply(steps: EntryBuffer[]): void {
    for (const step of steps) {
      const table = this.tables[step.map];
      for (let i = 0; i < step.count; i++) {
        const key = step.keys.toString('latin1', i * step.keySize, (i + 1) * step.keySize);
        if (step.op === 'update') table.set(key, step.values.toString('latin1', i * step.valueSize, (i + 1) * step.valueSize));
        else if (ARRAY_MAPS.has(step.map)) throw new Error(`${step.map}: an array entry cannot be deleted (EINVAL)`);
        else if (!table.delete(key)) throw new Error(`${step.map}: delete of a key that is not there`);
      }
      this.assertNothingDangles();
    }
  }

  dumps(): Record<ManagedMap, PackedEntries> {
    const out = {} as Record<ManagedMap, PackedEntries>;
    for (const m of MANAGED_MAPS) {
      const entries = [...this.tables[m]];
      out[m] = { keys: Buffer.from(entries.map((e) => e[0]).join(''), 'latin1'), values: Buffer.from(entries.map((e) => e[1]).join(''), 'latin1'), count: entries.length };
    }
    return out;
  }

  state(): MapState {
    return decodeMaps(this.dumps());
  }

  /** The array entry at `index`, when in use (a port other than 0), as the programs read it. */
  private arrayEntry(map: ManagedMap, index: number, portOffset: number): Buffer | undefined {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(index);
    const value = this.tables[map].get(key.toString('latin1'));
    if (value === undefined) return undefined;
    const bytes = Buffer.from(value, 'latin1');
    return bytes.readUInt16BE(portOffset) === constants.CM_BACKEND_UNUSED_PORT ? undefined : bytes;
  }

  /**
   * Every slot 1..count of every service names a backend in use (inline in slot 0, or in the
   * slot's own entry beyond those, as bpf/sock_lb.c reads them); its rev NAT is in use.
   */
  private assertNothingDangles(): void {
    for (const [family, f] of FAMILY_TABLES) {
      for (const [k, v] of this.tables[f.svc]) {
        const key = f.key.decode(Buffer.from(k, 'latin1'));
        if (key.backend_slot !== constants.CM_SERVICE_SLOT) continue;
        const head = codecs.lb4_service.decode(Buffer.from(v, 'latin1'));
        if (!this.arrayEntry(f.rnat, head.rev_nat_index, f.revNat.fields.port.offset)) throw new Error(`IPv${family} ${key.address}: rev NAT ${head.rev_nat_index} missing`);
        for (let slot = 1; slot <= head.count; slot++) {
          const backendId = slot <= INLINE ? head.backends[slot - 1] : this.slotEntry(f.svc, f.key.encode({ ...key, backend_slot: slot }))?.backends[0];
          if (backendId === undefined) throw new Error(`IPv${family} ${key.address}: slot ${slot} of ${head.count} missing`);
          if (!this.arrayEntry(f.be, backendId, f.backend.fields.port.offset)) throw new Error(`IPv${family} ${key.address}: slot ${slot} names an unused backend`);
        }
      }
    }
  }

  private slotEntry(map: ManagedMap, key: Buffer) {
    const value = this.tables[map].get(key.toString('latin1'));
    return value === undefined ? undefined : codecs.lb4_service.decode(Buffer.from(value, 'latin1'));
  }
}

const backend = (addr: string, port: number, state: DatapathBackend['state'] = 'active', clusterId = 0): DatapathBackend => ({ addr, port, state, clusterId });
const svc = (vip: string, backends: DatapathBackend[], proto: 'TCP' | 'UDP' = 'TCP', port = 80): DatapathService => ({ vip, port, proto, backends });

function reconcile(planner: Planner, kernel: FakeKernel, desired: DatapathService[]) {
  const plan = planner.plan(desired);
  const steps = plan.steps.map((s) => `${s.op} ${s.map}`);
  kernel.apply(plan.steps);
  plan.commit();
  return { updates: plan.updates, deletes: plan.deletes, steps };
}

/** A planner with `desired` applied to a fresh fake kernel. */
function programmed(desired: DatapathService[]) {
  const kernel = new FakeKernel();
  const planner = new Planner(kernel.state());
  const first = reconcile(planner, kernel, desired);
  return { kernel, planner, first };
}

/** Services as they read back, with backends sorted by address (slot order is the layout's business). */
const readBack = (kernel: FakeKernel) => servicesOf(kernel.state()).map((s) => ({ ...s, backends: [...s.backends].sort((x, y) => x.addr.localeCompare(y.addr) || x.port - y.port) }));
const sortedInput = (desired: DatapathService[]) =>
  readBackOrder(desired.map((s) => ({ ...s, vip: canonicalIp(s.vip, 'x').text, backends: [...s.backends].sort((x, y) => x.addr.localeCompare(y.addr) || x.port - y.port) })));
const readBackOrder = (list: DatapathService[]) => list.sort((x, y) => x.vip.localeCompare(y.vip) || x.port - y.port || x.proto.localeCompare(y.proto));

const clone = (desired: DatapathService[]): DatapathService[] => JSON.parse(JSON.stringify(desired));

describe('Planner', () => {
  const state = [
    svc('10.200.100.1', [backend('10.200.1.1', 8080), backend('10.200.1.2', 8080, 'quarantined', 2)]),
    svc('10.200.100.1', [backend('10.200.1.1', 8080)], 'UDP', 53),
    svc('fd99:200::100', [backend('fd99:200::1', 80)]),
  ];

  it('writes each entry once from empty, then nothing for the same state, also after a restart', () => {
    const { kernel, planner, first } = programmed(state);
    // rev NAT 3 + backends (10.200.1.1 tcp, .2 tcp, .1 udp, v6) 4 + slot 0 of each service 3 (every backend inline)
    expect([first.updates, first.deletes]).toEqual([10, 0]);
    expect(reconcile(planner, kernel, clone(state))).toMatchObject({ updates: 0, deletes: 0 });
    expect(reconcile(new Planner(kernel.state()), kernel, clone(state))).toMatchObject({ updates: 0, deletes: 0 });
  });

  it('reads back what it wrote', () => {
    const { kernel } = programmed(state);
    expect(servicesOf(kernel.state())).toEqual([
      { vip: '10.200.100.1', port: 53, proto: 'UDP', backends: [backend('10.200.1.1', 8080)] },
      { vip: '10.200.100.1', port: 80, proto: 'TCP', backends: [backend('10.200.1.1', 8080), backend('10.200.1.2', 8080, 'quarantined', 2)] },
      { vip: 'fd99:200::100', port: 80, proto: 'TCP', backends: [backend('fd99:200::1', 80)] },
    ]);
  });

  it('orders writes so nothing dangles: creates first, then slot 0, backends and rev NAT cleared last', () => {
    const { kernel, planner } = programmed(state);
    const changed = [svc('10.200.100.1', [backend('10.200.1.2', 8080), backend('10.200.1.3', 8080)]), state[2]];
    const { steps } = reconcile(planner, kernel, changed);
    expect(steps).toEqual([
      'update cm_lb4_be', // the new backend and .2's state (quarantined -> active)
      'update cm_lb4_svc', // slot 0: count 1 -> 2 and both backends inline, in one write
      'delete cm_lb4_svc', // the UDP service's slot 0 (its backend was inline)
      'update cm_lb4_be', // .1 (TCP and UDP) cleared to zero
      'update cm_lb4_rnat', // the UDP service's, cleared to zero
    ]);
    expect(readBack(kernel)).toEqual(sortedInput(changed));
  });

  it('past the inline slots: their entries are filled before slot 0 raises count, deleted after it lowers it', () => {
    const many = (n: number) => svc('10.200.100.1', Array.from({ length: n }, (_, i) => backend(`10.200.1.${i + 1}`, 8080)));
    const { kernel, planner, first } = programmed([many(INLINE + 2)]);
    // rev NAT + the backends + slot 0 + the 2 entries beyond the inline slots
    expect([first.updates, first.deletes]).toEqual([1 + (INLINE + 2) + 1 + 2, 0]);
    expect(first.steps).toEqual(['update cm_lb4_rnat', 'update cm_lb4_be', 'update cm_lb4_svc', 'update cm_lb4_svc']);
    const grown = reconcile(planner, kernel, [many(INLINE + 3)]);
    expect(grown).toEqual({ updates: 3, deletes: 0, steps: ['update cm_lb4_be', 'update cm_lb4_svc', 'update cm_lb4_svc'] }); // backend, its entry, then slot 0
    const shrunk = reconcile(planner, kernel, [many(INLINE - 1)]);
    // slot 0 (count, and the last inline slot gone); then the 3 entries and 4 backends go
    expect(shrunk).toEqual({ updates: 1, deletes: 3 + 4, steps: ['update cm_lb4_svc', 'delete cm_lb4_svc', 'update cm_lb4_be'] });
    expect(readBack(kernel)).toEqual(sortedInput([many(INLINE - 1)]));
    expect(reconcile(new Planner(kernel.state()), kernel, [many(INLINE - 1)])).toMatchObject({ updates: 0, deletes: 0 });
  });

  it('marks a backend with the least available state and the lowest cluster ID any service gives it', () => {
    const { kernel } = programmed([
      svc('10.200.100.1', [backend('10.200.1.1', 80, 'terminating', 3)]),
      svc('10.200.100.2', [backend('10.200.1.1', 80, 'quarantined', 2)]),
    ]);
    const [value] = kernel.tables.cm_lb4_be.values();
    expect(codecs.lb4_backend.decode(Buffer.from(value, 'latin1'))).toMatchObject({ state: constants.CM_BACKEND_QUARANTINED, cluster_id: 2 });
  });

  it('gives a shared backend back its own state and cluster when the service that lowered them goes', () => {
    const shared = [svc('10.200.100.1', [backend('10.200.1.1', 80, 'terminating', 3)]), svc('10.200.100.2', [backend('10.200.1.1', 80, 'quarantined', 2)])];
    const { kernel, planner } = programmed(shared);
    expect(reconcile(planner, kernel, [shared[0]])).toMatchObject({ updates: 1, deletes: 2 }); // the backend; slot 0, rev NAT
    const [value] = kernel.tables.cm_lb4_be.values();
    expect(codecs.lb4_backend.decode(Buffer.from(value, 'latin1'))).toMatchObject({ state: constants.CM_BACKEND_TERMINATING, cluster_id: 3 });
  });

  it.each<[string, DatapathService[], string]>([
    ['bad vip', [svc('10.200.100', [])], 'service 10.200.100:80/TCP: vip: "10.200.100" is not an IPv4 or IPv6 address'],
    ['mixed family', [svc('10.200.100.1', [backend('fd99:200::1', 80)])], 'service 10.200.100.1:80/TCP: backend fd99:200::1:80: address family differs from the vip\'s'],
    ['bad port', [svc('10.200.100.1', [backend('10.200.1.1', 0)])], 'service 10.200.100.1:80/TCP: backend 10.200.1.1:0: port 0 is not in 1..65535'],
    ['twice', [svc('10.200.100.1', []), svc('10.200.100.1', [])], 'service 10.200.100.1:80/TCP is listed twice'],
    ['twice, spelled differently', [svc('fd99:200::200', []), svc('FD99:200::200', [])], 'service FD99:200::200:80/TCP is listed twice'],
    ['bad state', [svc('10.200.100.1', [backend('10.200.1.1', 80, 'gone' as 'active')])], 'service 10.200.100.1:80/TCP: backend 10.200.1.1:80: unknown state "gone"'],
  ])('rejects %s in one line, changing nothing', (_name, bad, message) => {
    const { kernel, planner } = programmed(state);
    expect(() => planner.plan([...clone(state), ...bad])).toThrow(message);
    expect(reconcile(planner, kernel, clone(state))).toMatchObject({ updates: 0, deletes: 0 });
  });

  it('rejects a service listed twice with the same input, cached or not', () => {
    const { planner } = programmed(state);
    expect(() => planner.plan([...clone(state), clone(state)[0]])).toThrow('service 10.200.100.1:80/TCP is listed twice');
  });
});

describe('Planner: only what changed is written, slots stay put', () => {
  const four = ['10.200.1.1', '10.200.1.2', '10.200.1.3', '10.200.1.4'].map((addr) => backend(addr, 8080));
  const base = (): DatapathService[] => [
    svc('10.200.100.1', four.map((b) => ({ ...b }))),
    svc('10.200.100.2', [backend('10.200.2.1', 80)]),
    svc('fd99:200::100', [backend('fd99:200::1', 80), backend('fd99:200::2', 80)]),
  ];
  const edit = (f: (d: DatapathService[]) => void) => () => {
    const d = base();
    f(d);
    return d;
  };

  it.each<[string, () => DatapathService[], { updates: number; deletes: number }]>([
    ['nothing', base, { updates: 0, deletes: 0 }],
    ['the backends listed in another order', edit((d) => d[0].backends.reverse()), { updates: 0, deletes: 0 }],
    ['the services listed in another order', edit((d) => d.reverse()), { updates: 0, deletes: 0 }],
    ['the v6 vip spelled in upper case', edit((d) => (d[2].vip = 'FD99:200::100')), { updates: 0, deletes: 0 }],
    // the new backend + slot 0 (the freed inline slot); the old backend goes
    ['one backend replaced', edit((d) => (d[0].backends[0] = backend('10.200.1.5', 8080))), { updates: 2, deletes: 1 }],
    ['one backend\'s port changed', edit((d) => (d[0].backends[1].port = 9090)), { updates: 2, deletes: 1 }],
    // the backend's state + slot 0's count; it keeps its slot (the last)
    ['the last backend quarantined', edit((d) => (d[0].backends[3].state = 'quarantined')), { updates: 2, deletes: 0 }],
    // slot 0: its count, and the last backend moves into the freed inline slot; the backend goes
    ['the first backend removed', edit((d) => d[0].backends.shift()), { updates: 1, deletes: 1 }],
    // the backend + slot 0 (count and the new inline slot)
    ['a backend added', edit((d) => d[0].backends.push(backend('10.200.1.5', 8080))), { updates: 2, deletes: 0 }],
    // the backend's cluster + slot 0's remote flag
    ['a backend now remote', edit((d) => (d[1].backends[0].clusterId = 2)), { updates: 2, deletes: 0 }],
    // slot 0 (the 4 backends inline) + 4 backends + rev NAT
    ['a service removed', edit((d) => d.shift()), { updates: 0, deletes: 6 }],
    // rev NAT + slot 0; the backend is already there, shared
    ['a service added', edit((d) => d.push(svc('10.200.100.3', [backend('10.200.1.1', 8080)]))), { updates: 2, deletes: 0 }],
    ['a v6 backend replaced', edit((d) => (d[2].backends[1] = backend('fd99:200::3', 80))), { updates: 2, deletes: 1 }],
  ])('%s', (_name, next, expected) => {
    const { kernel, planner } = programmed(base());
    const desired = next();
    expect(reconcile(planner, kernel, desired)).toMatchObject(expected);
    expect(readBack(kernel)).toEqual(sortedInput(desired));
    // the same again, and a restarted planner over the same maps, write nothing
    expect(reconcile(planner, kernel, clone(desired))).toMatchObject({ updates: 0, deletes: 0 });
    expect(reconcile(new Planner(kernel.state()), kernel, clone(desired))).toMatchObject({ updates: 0, deletes: 0 });
  });

  it('rewrites a backend whose state goes and comes back (the committed value is never changed in place)', () => {
    const { kernel, planner } = programmed(base());
    const quarantined = edit((d) => (d[0].backends[3].state = 'quarantined'));
    for (const desired of [quarantined, base, quarantined]) {
      expect(reconcile(planner, kernel, desired()).updates).toBe(2); // the backend's state + slot 0's count
      expect(readBack(kernel)).toEqual(sortedInput(desired()));
    }
  });

  it('sees inputs changed in place after a reconcile (the cache keeps its own copy)', () => {
    const desired = base();
    const { kernel, planner } = programmed(desired);
    desired[0].backends[0].port = 9090;
    expect(reconcile(planner, kernel, desired)).toMatchObject({ updates: 2, deletes: 1 });
    expect(readBack(kernel)).toEqual(sortedInput(desired));
  });

  it('a restarted planner removes what the maps hold but nobody wants, and repairs holes', () => {
    const { kernel } = programmed([...base(), svc('10.200.100.9', [backend('10.200.9.1', 80), backend('10.200.9.2', 80)])]);
    // something left inline slot 1 of the first service empty, and an entry for slot 2 (which
    // this layout keeps inline, so no program reads it)
    const slot0 = codecs.lb4_key.encode({ address: '10.200.100.1', dport: 80, backend_slot: 0, proto: 6 }).toString('latin1');
    const head = codecs.lb4_service.decode(Buffer.from(kernel.tables.cm_lb4_svc.get(slot0)!, 'latin1'));
    kernel.tables.cm_lb4_svc.set(slot0, codecs.lb4_service.encode({ ...head, backends: [0, ...head.backends.slice(1)] }).toString('latin1'));
    const stray = codecs.lb4_key.encode({ address: '10.200.100.1', dport: 80, backend_slot: 2, proto: 6 }).toString('latin1');
    kernel.tables.cm_lb4_svc.set(stray, codecs.lb4_service.encode({ count: 0, rev_nat_index: 0, flags: 0, backends: [head.backends[1]] }).toString('latin1'));
    // slot 0 rewritten; the stray entry, and slot 0 + 2 backends + rev NAT of the unwanted service go
    expect(reconcile(new Planner(kernel.state()), kernel, base())).toMatchObject({ updates: 1, deletes: 5 });
    expect(kernel.tables.cm_lb4_svc.has(stray)).toBe(false);
    expect(readBack(kernel)).toEqual(sortedInput(base()));
  });

  it('compacts its listing columns to what cached services hold, once half of them is garbage', () => {
    const columns = new ListingColumns();
    const listing = (n: number) => {
      const first = columns.append(n);
      for (let i = 0; i < n; i++) [columns.addrs[first + i], columns.packed[first + i]] = [`10.0.${first}.${i}`, first * 10 + i];
      return { first, backendIds: new Array<number>(n) };
    };
    // replaced services (garbage) around the two still cached; compacting starts at 1024 listings
    const garbage = () => Array.from({ length: 150 }, () => listing(4));
    garbage();
    const kept = [listing(3)];
    garbage();
    kept.push(listing(2));
    const read = (s: { first: number; backendIds: number[] }) => s.backendIds.map((_, i) => [columns.addrs[s.first + i], columns.packed[s.first + i]]);
    const before = kept.map(read);
    columns.compact(kept);
    expect([columns.length, kept.map((s) => s.first)]).toEqual([5, [0, 3]]);
    expect(kept.map(read)).toEqual(before);
    columns.compact(kept); // nothing is garbage now: stays
    expect(kept.map((s) => s.first)).toEqual([0, 3]);
  });

  it('plans the same after its listings were compacted (hundreds of changes later)', () => {
    const { kernel, planner } = programmed(base());
    const changed = edit((d) => (d[0].backends[1].port = 9090));
    // each changed pass lists the changed service's 4 backends anew; the columns drop the old
    // ones once they are garbage (ListingColumns.compact, at 1024 listings and more)
    for (let i = 0; i < 400; i++) expect(reconcile(planner, kernel, i % 2 === 0 ? changed() : base())).toMatchObject({ updates: 2, deletes: 1 });
    expect(reconcile(planner, kernel, base())).toMatchObject({ updates: 0, deletes: 0 });
    expect(reconcile(planner, kernel, changed())).toMatchObject({ updates: 2, deletes: 1 });
    expect(readBack(kernel)).toEqual(sortedInput(changed()));
  });

  it('keeps its state after an ID shortage, replanning from the maps', () => {
    const { kernel, planner } = programmed(base());
    const many = Array.from({ length: 70_000 }, (_, i) => svc(`10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, []));
    expect(() => planner.plan([...base(), ...many])).toThrow('out of service IDs: at most 65535 can exist at once');
    expect(reconcile(planner, kernel, base())).toMatchObject({ updates: 0, deletes: 0 });
  });
});
