/**
 * The addon checks what callers hand it before any syscall, leaves no fd behind when a load
 * fails, and puts the verifier's whole log in the error of a rejected program.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { arch, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Datapath } from '../../lib/datapath/index.js';
import { codecs } from '../../lib/datapath/codecs.js';
import { loadNative, packageRoot, type LoadedObject } from '../../native/index.js';

const native = loadNative();
const SOCK_LB = join(packageRoot, 'bpf', 'sock_lb.o');
const FIXTURE = fileURLToPath(new URL('./fixtures/load-failures.bpf.c', import.meta.url));
const ARCH_INCLUDE = `/usr/include/${arch() === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`;

let scratch: string;
let pinDirs = 0;
const newPinDir = () => `/sys/fs/bpf/cm-addon-test-${process.pid}-${++pinDirs}`;
const openFds = () => readdirSync('/proc/self/fd').length;

/** Compiles the fixture as bpf/Makefile compiles sock_lb.c. */
function compileFixture(name: string, defines: string[]): string {
  const out = join(scratch, name);
  execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-Wall', `-I${ARCH_INCLUDE}`, ...defines, '-c', FIXTURE, '-o', out]);
  return out;
}

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'cm-addon-'));
});

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
  for (let i = 1; i <= pinDirs; i++) Datapath.destroy(`/sys/fs/bpf/cm-addon-test-${process.pid}-${i}`);
});

describe('map operations check their arguments against the map before the syscall', () => {
  let pinDir: string;
  let loaded: LoadedObject;
  let svc: number;
  const key = codecs.lb4_key.encode({ address: '10.200.0.1', dport: 80, backend_slot: 0, proto: 6 });
  const value = codecs.lb4_service.encode({ count: 1, rev_nat_index: 1, flags: 0, backends: [1] });
  const V = value.length;

  beforeAll(() => {
    pinDir = newPinDir();
    loaded = native.openObject(SOCK_LB, pinDir);
    svc = loaded.maps.cm_lb4_svc.fd;
  });

  afterAll(() => {
    native.closeObject(loaded.id);
  });

  const entries = () => native.mapDump(svc, key.length, value.length).count;

  it.each([
    ['a short key', () => native.mapUpdate(svc, key.subarray(0, 8), value), 'EINVAL: mapUpdate: key of 8 bytes for map cm_lb4_svc, whose keys are 12 bytes'],
    ['a long value', () => native.mapUpdate(svc, key, Buffer.alloc(V + 4)), `EINVAL: mapUpdate: value of ${V + 4} bytes for map cm_lb4_svc, whose values are ${V} bytes`],
    ['a key that is no Buffer', () => native.mapUpdate(svc, 'key' as unknown as Buffer, value), 'EINVAL: mapUpdate: key must be a Buffer'],
    ['a wrong lookup size', () => native.mapLookup(svc, key, 8), `EINVAL: mapLookup: value size 8 for map cm_lb4_svc, whose value size is ${V}`],
    ['a short delete key', () => native.mapDelete(svc, Buffer.alloc(4)), 'EINVAL: mapDelete: key of 4 bytes for map cm_lb4_svc, whose keys are 12 bytes'],
    ['a wrong next-key size', () => native.mapNextKey(svc, null, 16), 'EINVAL: mapNextKey: key size 16 for map cm_lb4_svc, whose key size is 12'],
    ['a wrong dump size', () => native.mapDump(svc, 12, V + 8), `EINVAL: mapDump: value size ${V + 8} for map cm_lb4_svc, whose value size is ${V}`],
    [
      'a batch count beyond the keys',
      () => native.mapUpdateBatch(svc, Buffer.concat([key, key]), Buffer.concat([value, value, value]), 3),
      'EINVAL: mapUpdateBatch: 3 entries of map cm_lb4_svc need 36 bytes of keys, the buffer has 24 bytes',
    ],
    [
      'a batch count beyond the values',
      () => native.mapUpdateBatch(svc, Buffer.concat([key, key]), value, 2),
      `EINVAL: mapUpdateBatch: 2 entries of map cm_lb4_svc need ${2 * V} bytes of values, the buffer has ${V} bytes`,
    ],
    ['a negative batch count', () => native.mapDeleteBatch(svc, key, -1), 'EINVAL: mapDeleteBatch: count must be an integer in 0..2^32-1'],
    ['a fractional batch count', () => native.mapDeleteBatch(svc, key, 0.5), 'EINVAL: mapDeleteBatch: count must be an integer in 0..2^32-1'],
    ['an fd that is no map of an open object', () => native.mapUpdate(0, key, value), 'EBADF: mapUpdate: fd 0 is not a map of an open object'],
  ])('refuses %s with one clear line', (_what, call, message) => {
    expect(call).toThrow(message);
    expect(entries()).toBe(0);
  });

  it('takes buffers larger than a batch needs, and sizes a per-CPU value by the possible CPUs', () => {
    native.mapUpdateBatch(svc, Buffer.concat([key, Buffer.alloc(12)]), Buffer.concat([value, Buffer.alloc(V)]), 1);
    expect(native.mapLookup(svc, key, V)).toEqual(value);
    native.mapDeleteBatch(svc, key, 1);
    expect(entries()).toBe(0);
    const stats = loaded.maps.cm_stats;
    const zero = Buffer.alloc(4);
    expect(native.mapLookup(stats.fd, zero, stats.valueSize * native.possibleCpus())).toHaveLength(8 * native.possibleCpus());
    const all = 8 * native.possibleCpus();
    expect(() => native.mapLookup(stats.fd, zero, all + 8)).toThrow(`EINVAL: mapLookup: value size ${all + 8} for map cm_stats, whose value size is ${all}`);
  });

  it('refuses the fds of a closed object', () => {
    const other = native.openObject(SOCK_LB, pinDir);
    const fd = other.maps.cm_lb4_svc.fd;
    native.closeObject(other.id);
    expect(() => native.mapLookup(fd, key, V)).toThrow(`EBADF: mapLookup: fd ${fd} is not a map of an open object`);
  });
});

describe('mapMmap', () => {
  it('maps a BPF_F_MMAPABLE array: a store is what the kernel reads, elements 8-byte aligned; closeObject detaches it', () => {
    const loaded = native.openObject(SOCK_LB, newPinDir());
    const be = loaded.maps.cm_lb4_be;
    const memory = Buffer.from(native.mapMmap(be.fd));
    const stride = Math.ceil(be.valueSize / 8) * 8;
    expect(memory.length).toBe(stride * be.maxEntries);
    const value = codecs.lb4_backend.encode({ address: '10.200.1.1', port: 8080, proto: 6, state: 0, cluster_id: 2 });
    value.copy(memory, 7 * stride);
    const key = Buffer.alloc(4);
    key.writeUInt32LE(7);
    expect(native.mapLookup(be.fd, key, be.valueSize)).toEqual(value);
    native.closeObject(loaded.id);
    expect(memory.buffer.byteLength).toBe(0); // detached: no store can reach a closed map
  });

  it('refuses a map that is not a BPF_F_MMAPABLE array in one line', () => {
    const loaded = native.openObject(SOCK_LB, newPinDir());
    try {
      expect(() => native.mapMmap(loaded.maps.cm_lb4_svc.fd)).toThrow('EINVAL: mapMmap: map cm_lb4_svc is not a BPF_F_MMAPABLE array');
    } finally {
      native.closeObject(loaded.id);
    }
  });
});

describe('a failed load', () => {
  let rejected: string;
  let clash: string;

  beforeAll(() => {
    rejected = compileFixture('rejected.o', ['-DREJECTED']);
    clash = compileFixture('clash.o', []);
  });

  it('leaves no fd open and no pin behind, whatever failed', () => {
    const garbage = join(scratch, 'garbage.o');
    writeFileSync(garbage, Buffer.alloc(4096, 0x5a));
    const clashDir = newPinDir();
    const clashing = native.openObject(clash, clashDir); // pins an incompatible cm_lb4_svc
    native.closeObject(clashing.id);
    const rejectedDir = newPinDir();
    const attempts: [string, string, string][] = [
      ['not an ELF object', garbage, newPinDir()],
      ['an incompatible pinned map', SOCK_LB, clashDir],
      ['a program the verifier rejects', rejected, rejectedDir],
    ];
    for (const [what, objectPath, pinDir] of attempts) {
      const before = openFds();
      for (let i = 0; i < 20; i++) expect(() => native.openObject(objectPath, pinDir)).toThrow();
      expect([what, openFds()]).toEqual([what, before]);
    }
    // the clash pin is the fixture's own; the rejected load unpinned the map it had created
    expect(readdirSync(clashDir)).toEqual(['cm_lb4_svc']);
    expect(readdirSync(rejectedDir)).toEqual([]);
    rmSync(join(clashDir, 'cm_lb4_svc'));
  });

  it('says what failed in its first line and carries the whole verifier log', () => {
    const pinDir = newPinDir();
    let message = '';
    try {
      native.openObject(rejected, pinDir);
    } catch (error) {
      message = (error as Error).message;
    }
    const lines = message.split('\n');
    expect(lines[0]).toBe(`EACCES: loading ${rejected}: the kernel's verifier rejected a program (Permission denied); libbpf said:`);
    const begin = lines.findIndex((l) => l.includes('-- BEGIN PROG LOAD LOG --'));
    const end = lines.findIndex((l) => l.includes('-- END PROG LOAD LOG --'));
    expect(begin).toBeGreaterThan(0);
    expect(end).toBeGreaterThan(begin + 2);
    // the verifier's first instruction and its final verdict are both there, not one line of it
    expect(lines[begin + 1]).toMatch(/^0: /);
    expect(lines.slice(begin, end).join('\n')).toMatch(/invalid mem access 'map_value_or_null'/);
    expect(existsSync(join(pinDir, 'cm_lb4_svc'))).toBe(false);
  });

  it('through Datapath.open, too, leaves no fd open (a rejected program, an object without our maps)', async () => {
    const before = openFds();
    await expect(Datapath.open({ pinDir: newPinDir(), objectPath: rejected })).rejects.toThrow(/verifier rejected a program/);
    await expect(Datapath.open({ pinDir: newPinDir(), objectPath: clash })).rejects.toThrow(`${clash} lacks maps`);
    expect(openFds()).toBe(before);
  });
});
