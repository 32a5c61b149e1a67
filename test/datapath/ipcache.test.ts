/**
 * The remote ipcache LPM tries (cm_ipcache4 / cm_ipcache6) on real pinned maps: entries written
 * and read back, the kernel's longest-prefix match, differential writes, removal, zero writes
 * after a restart, the single-write fallback for kernels without LPM batch ops, and the pins.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Datapath, type IpcacheEntry } from '../../lib/datapath/index.js';
import { IpcacheWriter, desiredState, planIpcache } from '../../lib/datapath/ipcache.js';
import { loadNative, packageRoot, type NativeAddon } from '../../native/index.js';

const pinDir = `/sys/fs/bpf/cm-ipc-test-${process.pid}`;
let dp: Datapath | undefined;

const WEST = 2;
const NORTH = 3;
const ENTRIES: IpcacheEntry[] = [
  { cidr: '10.102.0.0/16', identity: 2, clusterId: WEST }, // the world of west (a CIDR identity)
  { cidr: '10.102.1.0/24', identity: 0x20010, clusterId: WEST }, // one node's pod range
  { cidr: '10.102.1.5', identity: 0x20001, clusterId: WEST }, // a pod
  { cidr: '10.103.0.7/32', identity: 0x30001, clusterId: NORTH },
  { cidr: 'fd99:102::/48', identity: 2, clusterId: WEST },
  { cidr: 'fd99:102:0::5', identity: 0x20001, clusterId: WEST },
];

beforeAll(async () => {
  dp = await Datapath.open({ pinDir });
});

afterAll(() => {
  dp?.close();
  Datapath.destroy(pinDir);
});

function open(): Datapath {
  if (!dp) throw new Error('datapath not open');
  return dp;
}

describe('cm_ipcache4 / cm_ipcache6', () => {
  it('are created and pinned with the other maps (no program uses them yet)', () => {
    for (const name of ['cm_ipcache4', 'cm_ipcache6', 'cm_lb4_svc']) expect([name, existsSync(join(pinDir, name))]).toEqual([name, true]);
  });

  it('hold what reconcile wrote, in canonical form', () => {
    const stats = open().reconcileIpcache(ENTRIES);
    expect(stats).toMatchObject({ updates: ENTRIES.length, deletes: 0, entries: ENTRIES.length });
    expect(open().dumpIpcache()).toEqual([
      { cidr: '10.102.0.0/16', identity: 2, clusterId: WEST },
      { cidr: '10.102.1.0/24', identity: 0x20010, clusterId: WEST },
      { cidr: '10.102.1.5/32', identity: 0x20001, clusterId: WEST },
      { cidr: '10.103.0.7/32', identity: 0x30001, clusterId: NORTH },
      { cidr: 'fd99:102::/48', identity: 2, clusterId: WEST },
      { cidr: 'fd99:102::5/128', identity: 0x20001, clusterId: WEST },
    ]);
  });

  it.each([
    ['10.102.1.5', { identity: 0x20001, clusterId: WEST }],
    ['10.102.1.9', { identity: 0x20010, clusterId: WEST }],
    ['10.102.200.1', { identity: 2, clusterId: WEST }],
    ['10.103.0.7', { identity: 0x30001, clusterId: NORTH }],
    ['10.103.0.8', null],
    ['fd99:102::5', { identity: 0x20001, clusterId: WEST }],
    ['fd99:102:0:1::9', { identity: 2, clusterId: WEST }],
    ['fd99:103::1', null],
  ])('the kernel resolves %s to its longest prefix', (ip, expected) => {
    expect(open().lookupIpcache(ip)).toEqual(expected);
  });

  it('writes only what changed and removes what is gone', () => {
    expect(open().reconcileIpcache(ENTRIES)).toMatchObject({ updates: 0, deletes: 0 });
    const changed = ENTRIES.filter((e) => e.cidr !== '10.102.1.5').map((e) => (e.cidr === '10.103.0.7/32' ? { ...e, identity: 0x30002 } : e));
    expect(open().reconcileIpcache(changed)).toMatchObject({ updates: 1, deletes: 1, entries: ENTRIES.length - 1 });
    expect(open().lookupIpcache('10.102.1.5')).toEqual({ identity: 0x20010, clusterId: WEST }); // falls back to the /24
    expect(open().lookupIpcache('10.103.0.7')).toEqual({ identity: 0x30002, clusterId: NORTH });
    expect(open().reconcileIpcache(ENTRIES)).toMatchObject({ updates: 2, deletes: 0 });
  });

  it('restores from the pins: a new process with unchanged entries writes nothing', async () => {
    open().close();
    dp = undefined;
    dp = await Datapath.open({ pinDir });
    expect(open().reconcileIpcache([...ENTRIES].reverse())).toMatchObject({ updates: 0, deletes: 0, entries: ENTRIES.length });
    expect(open().lookupIpcache('10.102.1.5')).toEqual({ identity: 0x20001, clusterId: WEST });
  });

  it('refuses bad input before writing anything', () => {
    const before = open().dumpIpcache();
    expect(() => open().reconcileIpcache([{ cidr: '10.9.9.9/32', identity: 1, clusterId: 4 }, { cidr: '10.102.1.5/16', identity: 1, clusterId: WEST }])).toThrow(
      'ipcache entry: "10.102.1.5/16" has host bits set: did you mean 10.102.0.0/16?',
    );
    expect(() => open().reconcileIpcache([{ cidr: '10.9.9.9', identity: 1, clusterId: 0 }])).toThrow(/cluster ID 0 is not 1\.\.65535/);
    expect(open().dumpIpcache()).toEqual(before);
  });

  it('empties both maps', () => {
    expect(open().reconcileIpcache([])).toMatchObject({ updates: 0, deletes: ENTRIES.length, entries: 0 });
    expect(open().dumpIpcache()).toEqual([]);
    expect(open().lookupIpcache('10.102.1.5')).toBeNull();
  });
});

describe('a kernel without batch operations on LPM tries', () => {
  const fallbackPinDir = `${pinDir}-single`;

  afterAll(() => Datapath.destroy(fallbackPinDir));

  it('gets the same result through single writes', () => {
    const native = loadNative();
    const calls = { batch: 0, update: 0, delete: 0 };
    const refuse = (): never => {
      calls.batch++;
      throw Object.assign(new Error('ENOTSUPP: batch map update stopped after 0 of 1 entries'), { code: 'E524', errno: 524 });
    };
    const noBatch: NativeAddon = {
      ...native,
      mapUpdateBatch: refuse,
      mapDeleteBatch: refuse,
      mapUpdate: (...args) => (calls.update++, native.mapUpdate(...args)),
      mapDelete: (...args) => (calls.delete++, native.mapDelete(...args)),
    };
    const loaded = native.openObject(join(packageRoot, 'bpf', 'sock_lb.o'), fallbackPinDir);
    try {
      const maps = { cm_ipcache4: loaded.maps.cm_ipcache4, cm_ipcache6: loaded.maps.cm_ipcache6 };
      const writer = new IpcacheWriter(noBatch, maps, true);
      expect(writer.reconcile(ENTRIES)).toMatchObject({ updates: ENTRIES.length });
      expect(writer.reconcile(ENTRIES.slice(1))).toMatchObject({ deletes: 1 });
      expect(calls).toEqual({ batch: 1, update: ENTRIES.length, delete: 1 }); // refused once, then never tried again
      expect(new IpcacheWriter(native, maps, true).dump()).toHaveLength(ENTRIES.length - 1);
      expect(writer.lookup('10.102.1.9')).toEqual({ identity: 0x20010, clusterId: WEST });
      expect(writer.lookup('10.102.9.9')).toBeNull(); // its /16 was the entry removed
    } finally {
      native.closeObject(loaded.id);
    }
    Datapath.destroy(fallbackPinDir);
    expect(existsSync(fallbackPinDir)).toBe(false); // the directory goes only once every pin, ipcache ones included, is gone
  });
});

describe('planning (pure)', () => {
  it('diffs by canonical CIDR and value', () => {
    const current = desiredState([{ cidr: '10.1.0.0/16', identity: 1, clusterId: 2 }, { cidr: 'fd99::1', identity: 3, clusterId: 2 }]);
    const desired = desiredState([{ cidr: '10.1.0.0/16', identity: 5, clusterId: 2 }, { cidr: '10.2.0.1', identity: 3, clusterId: 2 }]);
    const plan = planIpcache(current, desired);
    expect(plan.updates.map((p) => [p.cidr.prefix, p.value.identity])).toEqual([[16, 5], [32, 3]]);
    expect(plan.deletes.map((c) => [c.family, c.prefix])).toEqual([[6, 128]]);
  });

  it('accepts a repeated identical entry and refuses a conflicting one', () => {
    const entry = { cidr: '10.1.2.3', identity: 1, clusterId: 2 };
    expect(desiredState([entry, { ...entry, cidr: '10.1.2.3/32' }]).size).toBe(1);
    expect(() => desiredState([entry, { ...entry, clusterId: 3 }])).toThrow(
      'ipcache entry 10.1.2.3/32 is listed twice with different values (identity 1 of cluster 2, identity 1 of cluster 3)',
    );
    expect(() => desiredState([{ cidr: 'nope', identity: 1, clusterId: 2 }])).toThrow(/ipcache entry: "nope" is not an IP address/);
    expect(() => desiredState([{ ...entry, identity: -1 }])).toThrow('ipcache entry 10.1.2.3: identity -1 is not a 32-bit unsigned integer');
  });
});
