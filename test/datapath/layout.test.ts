/** The TS codecs and bpf/clustermesh.h (compiled into the addon) agree byte for byte. */
import { codecs, constants } from '../../lib/datapath/codecs.js';
import { layoutDrift } from '../../lib/datapath/layout-drift.js';
import { loadNative } from '../../native/index.js';

const native = loadNative();
const header = native.layouts();

describe('map struct layouts', () => {
  it('covers every struct of the header and nothing else', () => {
    expect(Object.keys(codecs).sort()).toEqual(Object.keys(header).sort());
  });

  it.each(Object.keys(codecs))('%s has the header size and field offsets', (name) => {
    const codec = codecs[name as keyof typeof codecs];
    expect(codec.size).toBe(header[name].size);
    const fromCodec = Object.fromEntries(Object.entries(codec.fields).map(([f, s]) => [f, { offset: s.offset, size: s.size }]));
    expect(fromCodec).toEqual(header[name].fields);
  });

  it('has the header constants', () => {
    const fromHeader = native.constants();
    for (const [name, value] of Object.entries(constants)) expect([name, fromHeader[name]]).toEqual([name, value]);
  });

  it('reports drift precisely (what check-layout prints)', () => {
    expect(layoutDrift(header, native.constants())).toEqual([]);
    const moved = structuredClone(header);
    moved.lb4_key.fields.dport.offset = 6;
    moved.lb6_backend.size = 28;
    delete moved.lb4_reverse_nat;
    expect(layoutDrift(moved, { ...native.constants(), CM_BACKEND_QUARANTINED: 9 })).toEqual([
      'lb4_key.dport: offset/size 4/2 in TS, 6/2 in C',
      'lb6_backend: size 24 in TS, 28 in C',
      'lb4_reverse_nat: in lib/datapath/codecs.ts but not in bpf/clustermesh.h',
      'CM_BACKEND_QUARANTINED: 2 in TS, 9 in C',
    ]);
  });
});

describe('codecs', () => {
  it('round-trip and put addresses and ports in network order', () => {
    const value = { address: 'fd99:200::1', port: 8080, proto: 6, state: 2, cluster_id: 7 };
    const bytes = codecs.lb6_backend.encode(value);
    expect(codecs.lb6_backend.decode(bytes)).toEqual(value);
    expect(bytes.subarray(0, 2)).toEqual(Buffer.from([0xfd, 0x99]));
    expect(bytes.readUInt16BE(16)).toBe(8080);
    expect(bytes.readUInt16LE(20)).toBe(7);
  });

  it('lay LPM trie keys out as the kernel reads them: prefix length in host order, then the address', () => {
    expect([...codecs.ipcache4_key.encode({ prefixlen: 24, address: '10.102.1.0' })]).toEqual([24, 0, 0, 0, 10, 102, 1, 0]);
    const key6 = codecs.ipcache6_key.encode({ prefixlen: 48, address: 'fd99:102::' });
    expect([...key6.subarray(0, 8)]).toEqual([48, 0, 0, 0, 0xfd, 0x99, 0x01, 0x02]);
    expect(codecs.ipcache_value.decode(codecs.ipcache_value.encode({ identity: 0x20001, cluster_id: 2 }))).toEqual({ identity: 0x20001, cluster_id: 2 });
  });

  it('put a service\'s inline backend IDs in host order and zero those past the list and the padding', () => {
    const dirty = Buffer.alloc(codecs.lb4_service.size, 0xff);
    codecs.lb4_service.encode({ count: 2, rev_nat_index: 7, flags: 1, backends: [0x01020304, 5] }, dirty);
    expect([...dirty.subarray(0, 12)]).toEqual([2, 0, 7, 0, 1, 0, 0, 0, 4, 3, 2, 1]);
    const rest = Array<number>(constants.CM_LB_INLINE_BACKENDS - 2).fill(0);
    expect(codecs.lb4_service.decode(dirty)).toEqual({ count: 2, rev_nat_index: 7, flags: 1, backends: [0x01020304, 5, ...rest] });
  });

  it('zeroes padding so equal structs are equal bytes', () => {
    const dirty = Buffer.alloc(12, 0xff);
    codecs.lb4_key.encode({ address: '10.200.0.1', dport: 80, backend_slot: 1, proto: 17 }, dirty);
    expect([...dirty]).toEqual([10, 200, 0, 1, 0, 80, 1, 0, 17, 0, 0, 0]);
  });
});
