/** Pure datapath decisions: slot layout, IDs, desired map contents, diffs (no kernel needed). */
import { codecs } from '../../lib/datapath/codecs.js';
import { IdAllocator } from '../../lib/datapath/ids.js';
import { formatIp, parseIp } from '../../lib/datapath/ip.js';
import { desiredEntries, diffEntries, emptyEntries, entriesToServices, restoreIds, type MapEntries, type WriteStep } from '../../lib/datapath/plan.js';
import { layoutSlots, type SlotCandidate } from '../../lib/datapath/slots.js';
import type { DatapathBackend, DatapathService } from '../../lib/datapath/types.js';

describe('layoutSlots', () => {
  it.each<[string, SlotCandidate[], { count: number; slots: number[] }]>([
    ['no backends', [], { count: 0, slots: [] }],
    ['all active, by ID', [{ backendId: 3, state: 'active' }, { backendId: 1, state: 'active' }], { count: 2, slots: [1, 3] }],
    [
      'active first, then the rest',
      [{ backendId: 1, state: 'quarantined' }, { backendId: 2, state: 'active' }, { backendId: 3, state: 'terminating' }, { backendId: 4, state: 'active' }],
      { count: 2, slots: [2, 4, 1, 3] },
    ],
    ['none active', [{ backendId: 5, state: 'maintenance' }, { backendId: 2, state: 'terminating' }], { count: 0, slots: [2, 5] }],
    ['a duplicate keeps its first state', [{ backendId: 1, state: 'active' }, { backendId: 1, state: 'quarantined' }], { count: 1, slots: [1] }],
  ])('%s', (_name, candidates, expected) => {
    expect(layoutSlots(candidates)).toEqual(expected);
  });
});

describe('IdAllocator', () => {
  it('keeps IDs, restores them, never hands out a just-freed ID before wrapping', () => {
    const ids = new IdAllocator('test', 4, [['a', 2]]);
    expect(ids.acquire('a')).toBe(2);
    expect(ids.acquire('b')).toBe(3);
    ids.retainOnly(new Set(['b']));
    expect(ids.acquire('c')).toBe(4);
    expect(ids.acquire('d')).toBe(1); // wrapped
    expect(ids.acquire('e')).toBe(2); // freed long ago
    expect(() => ids.acquire('f')).toThrow('out of test IDs: at most 4 can exist at once');
  });
});

describe('ip', () => {
  it.each([
    ['10.200.0.1', '10.200.0.1'],
    ['FD99:200:0:0::1', 'fd99:200::1'],
    ['fd99:0:0:1:0:0:0:1', 'fd99:0:0:1::1'],
    ['::ffff:10.0.0.1', '::ffff:a00:1'],
    ['::', '::'],
  ])('%s is %s', (text, canonical) => expect(formatIp(parseIp(text, 'x').bytes)).toBe(canonical));

  it('rejects non-addresses in one line', () => {
    expect(() => parseIp('10.0.0.300', 'service vip')).toThrow('service vip: "10.0.0.300" is not an IPv4 or IPv6 address');
  });
});

const backend = (addr: string, port: number, state: DatapathBackend['state'] = 'active', clusterId = 0): DatapathBackend => ({ addr, port, state, clusterId });
const svc = (vip: string, backends: DatapathBackend[], proto: 'TCP' | 'UDP' = 'TCP', port = 80): DatapathService => ({ vip, port, proto, backends });

/** Applies steps to a copy of `current`, as the kernel would. */
function applied(current: MapEntries, steps: WriteStep[]): MapEntries {
  const next = emptyEntries();
  for (const [name, table] of Object.entries(current)) next[name as keyof MapEntries] = new Map(table);
  for (const step of steps) {
    if (step.op === 'update') step.keys.forEach((k, i) => next[step.map].set(k, step.values[i]));
    else step.keys.forEach((k) => next[step.map].delete(k));
  }
  return next;
}

function reconcile(current: MapEntries, desired: DatapathService[], ids = restoreIds(current)) {
  const target = desiredEntries(desired, ids);
  const steps = diffEntries(current, target);
  return { steps, next: applied(current, steps), ids };
}

const count = (steps: WriteStep[], op: WriteStep['op']) => steps.filter((s) => s.op === op).reduce((n, s) => n + s.keys.length, 0);

describe('desired entries and diffs', () => {
  const state = [
    svc('10.200.100.1', [backend('10.200.1.1', 8080), backend('10.200.1.2', 8080, 'quarantined', 2)]),
    svc('10.200.100.1', [backend('10.200.1.1', 8080)], 'UDP', 53),
    svc('fd99:200::100', [backend('fd99:200::1', 80)]),
  ];

  it('writes each entry once from empty, then nothing for the same state', () => {
    const { steps, next, ids } = reconcile(emptyEntries(), state);
    // rev NAT 3 + backends (10.200.1.1 tcp, .2 tcp, .1 udp, v6) 4 + slots (3 + 2 + 2)
    expect([count(steps, 'update'), count(steps, 'delete')]).toEqual([14, 0]);
    expect(reconcile(next, state, ids).steps).toEqual([]);
    expect(reconcile(next, state).steps).toEqual([]); // with IDs restored from the maps alone
  });

  it('reads back what it wrote', () => {
    const { next } = reconcile(emptyEntries(), state);
    expect(entriesToServices(next)).toEqual([
      { vip: '10.200.100.1', port: 53, proto: 'UDP', backends: [backend('10.200.1.1', 8080)] },
      { vip: '10.200.100.1', port: 80, proto: 'TCP', backends: [backend('10.200.1.1', 8080), backend('10.200.1.2', 8080, 'quarantined', 2)] },
      { vip: 'fd99:200::100', port: 80, proto: 'TCP', backends: [backend('fd99:200::1', 80)] },
    ]);
  });

  it('keeps IDs of surviving backends and orders writes so nothing dangles', () => {
    const { next, ids } = reconcile(emptyEntries(), state);
    const keptId = ids.backends.get('4|10.200.1.2|8080|6');
    const changedState = [svc('10.200.100.1', [backend('10.200.1.2', 8080), backend('10.200.1.3', 8080)]), state[2]];
    const { steps, next: after } = reconcile(next, changedState, ids);
    expect(ids.backends.get('4|10.200.1.2|8080|6')).toBe(keptId);
    expect(steps.map((s) => `${s.op} ${s.map}`)).toEqual([
      'update cm_lb4_be', // the new backend and .2's state (quarantined -> active)
      'update cm_lb4_svc', // slots 1..2
      'update cm_lb4_svc', // slot 0 (count 1 -> 2)
      'delete cm_lb4_svc', // the UDP service (slot 0 first)
      'delete cm_lb4_be', // .1 (TCP and UDP)
      'delete cm_lb4_rnat', // the UDP service
    ]);
    const udpGone = steps.find((s) => s.op === 'delete' && s.map === 'cm_lb4_svc')!;
    expect(codecs.lb4_key.decode(Buffer.from(udpGone.keys[0], 'latin1')).backend_slot).toBe(0);
    expect(entriesToServices(after).map((s) => s.backends.map((b) => b.addr))).toEqual([['10.200.1.2', '10.200.1.3'], ['fd99:200::1']]);
  });

  it('marks a backend with the least available state any service gives it', () => {
    const { next } = reconcile(emptyEntries(), [
      svc('10.200.100.1', [backend('10.200.1.1', 80, 'terminating')]),
      svc('10.200.100.2', [backend('10.200.1.1', 80, 'quarantined')]),
    ]);
    const [value] = next.cm_lb4_be.values();
    expect(codecs.lb4_backend.decode(Buffer.from(value, 'latin1')).state).toBe(2);
  });

  it.each<[string, DatapathService[], string]>([
    ['bad vip', [svc('10.200.100', [])], 'service 10.200.100:80/TCP: vip: "10.200.100" is not an IPv4 or IPv6 address'],
    ['mixed family', [svc('10.200.100.1', [backend('fd99:200::1', 80)])], 'service 10.200.100.1:80/TCP: backend fd99:200::1:80: address family differs from the vip\'s'],
    ['bad port', [svc('10.200.100.1', [backend('10.200.1.1', 0)])], 'service 10.200.100.1:80/TCP: backend 10.200.1.1:0: port 0 is not in 1..65535'],
    ['twice', [svc('10.200.100.1', []), svc('10.200.100.1', [])], 'service 10.200.100.1:80/TCP is listed twice'],
    ['bad state', [svc('10.200.100.1', [backend('10.200.1.1', 80, 'gone' as 'active')])], 'service 10.200.100.1:80/TCP: backend 10.200.1.1:80: unknown state "gone"'],
  ])('rejects %s in one line, before touching IDs', (_name, desired, message) => {
    const ids = restoreIds(emptyEntries());
    expect(() => desiredEntries(desired, ids)).toThrow(message);
    expect([...ids.services.entries()]).toEqual([]);
  });
});
