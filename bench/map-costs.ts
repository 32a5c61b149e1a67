/**
 * What the kernel charges per map element, for each map kind and flag the datapath could use
 * (bench/map-costs.bpf.c: the service, backend and reverse-NAT maps of bpf/sock_lb.c with the same
 * structs and capacities, as a preallocated or BPF_F_NO_PREALLOC hash, or an array indexed by ID),
 * batched and one syscall per element, side by side with the layout bpf/sock_lb.c had before
 * (all three BPF_F_NO_PREALLOC hashes) as the baseline. Then the same numbers summed per layout for
 * the writes of a full sync of 30k services × 4 backends and of a 1% change.
 * Run: npx tsc -p tsconfig.json && node dist/bench/map-costs.js   (root; bpffs mounted; clang)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants } from '../lib/datapath/codecs.js';
import { loadNative, packageRoot, type LoadedObject, type NativeAddon } from '../native/index.js';
import { type BenchResult, type Figure, type Table, envInt, figure, runStandalone } from './report.js';

const SERVICES = envInt('BENCH_MAP_SERVICES', 30_000);
const BACKENDS_PER_SERVICE = 4;
const TRIALS = envInt('BENCH_MAP_TRIALS', 5);
/** 1% of the services get one backend replaced: a new backend, its slot rewritten, the old one gone */
const CHURN = Math.ceil(SERVICES / 100);

type Role = 'svc' | 'be' | 'rnat';
type Kind = 'hash, BPF_F_NO_PREALLOC' | 'hash, preallocated' | 'array';

interface Variant {
  map: string;
  role: Role;
  kind: Kind;
}

const VARIANTS: Variant[] = [
  { map: 'svc4_hash_np', role: 'svc', kind: 'hash, BPF_F_NO_PREALLOC' },
  { map: 'svc4_hash_pa', role: 'svc', kind: 'hash, preallocated' },
  { map: 'be4_hash_np', role: 'be', kind: 'hash, BPF_F_NO_PREALLOC' },
  { map: 'be4_hash_pa', role: 'be', kind: 'hash, preallocated' },
  { map: 'be4_array', role: 'be', kind: 'array' },
  { map: 'rnat4_hash_np', role: 'rnat', kind: 'hash, BPF_F_NO_PREALLOC' },
  { map: 'rnat4_hash_pa', role: 'rnat', kind: 'hash, preallocated' },
  { map: 'rnat4_array', role: 'rnat', kind: 'array' },
];

const ROLE_TEXT: Record<Role, string> = {
  svc: 'services (cm_lb4_svc: VIP, port, slot → value)',
  be: 'backends (cm_lb4_be: ID → backend)',
  rnat: 'reverse NAT (cm_lb4_rnat: index → VIP)',
};

interface Layout {
  name: string;
  maps: Record<Role, string>;
}

const LAYOUTS: Layout[] = [
  { name: 'before: all hash, BPF_F_NO_PREALLOC (baseline)', maps: { svc: 'svc4_hash_np', be: 'be4_hash_np', rnat: 'rnat4_hash_np' } },
  { name: 'all hash, preallocated', maps: { svc: 'svc4_hash_pa', be: 'be4_hash_pa', rnat: 'rnat4_hash_pa' } },
  { name: 'svc hash no-prealloc; be, rnat arrays', maps: { svc: 'svc4_hash_np', be: 'be4_array', rnat: 'rnat4_array' } },
  { name: 'svc hash preallocated; be, rnat arrays (chosen)', maps: { svc: 'svc4_hash_pa', be: 'be4_array', rnat: 'rnat4_array' } },
];

// ---- the entries of a 30k × 4 datapath, packed as the batch calls take them ------------------------

interface Packed {
  keys: Buffer;
  values: Buffer;
  count: number;
  keySize: number;
  valueSize: number;
}

function packed(count: number, keySize: number, valueSize: number, fill: (k: Buffer, v: Buffer, i: number) => void): Packed {
  const keys = Buffer.alloc(count * keySize);
  const values = Buffer.alloc(count * valueSize);
  for (let i = 0; i < count; i++) fill(keys.subarray(i * keySize, (i + 1) * keySize), values.subarray(i * valueSize, (i + 1) * valueSize), i);
  return { keys, values, count, keySize, valueSize };
}

const SLOTS = BACKENDS_PER_SERVICE + 1;

/** Entry i of the role's map (svc: service i / SLOTS, slot i % SLOTS; be: ID i + 1; rnat: index i + 1). */
function entries(role: Role, keySize: number, valueSize: number, ids: number[], generation = 0): Packed {
  return packed(ids.length, keySize, valueSize, (k, v, n) => {
    const i = ids[n];
    if (role === 'svc') {
      const service = Math.floor(i / SLOTS);
      const slot = i % SLOTS;
      k.set([10, 200 + (service >> 16), (service >> 8) & 255, service & 255]);
      k.writeUInt16BE(80, 4);
      k.writeUInt16LE(slot, 6);
      k[8] = constants.CM_PROTO_TCP;
      v.writeUInt32LE(slot === 0 ? 0 : service * BACKENDS_PER_SERVICE + slot + generation, 0);
      v.writeUInt16LE(slot === 0 ? BACKENDS_PER_SERVICE : 0, 4);
      v.writeUInt16LE(service + 1, 6);
      return;
    }
    if (keySize === 2) k.writeUInt16LE(i + 1);
    else k.writeUInt32LE(i + 1);
    v.set([10, 202 + (i >> 16), (i >> 8) & 255, i & 255]);
    v.writeUInt16BE(8080 + generation, 4);
    if (role === 'be') v[6] = constants.CM_PROTO_TCP;
  });
}

const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);

function fullCount(role: Role): number {
  return role === 'svc' ? SERVICES * SLOTS : role === 'be' ? SERVICES * BACKENDS_PER_SERVICE : SERVICES;
}

// ---- timing ----------------------------------------------------------------------------------------

type Mode = 'batch' | 'single';

function write(native: NativeAddon, fd: number, p: Packed, mode: Mode): number {
  const keys = mode === 'single' ? range(0, p.count).map((i) => p.keys.subarray(i * p.keySize, (i + 1) * p.keySize)) : [];
  const values = mode === 'single' ? range(0, p.count).map((i) => p.values.subarray(i * p.valueSize, (i + 1) * p.valueSize)) : [];
  const started = performance.now();
  if (mode === 'batch') native.mapUpdateBatch(fd, p.keys, p.values, p.count);
  else for (let i = 0; i < p.count; i++) native.mapUpdate(fd, keys[i], values[i]);
  return performance.now() - started;
}

/** Deletes the keys; in an array (where nothing can be deleted) writes the empty value instead. */
function remove(native: NativeAddon, fd: number, kind: Kind, p: Packed, mode: Mode): number {
  if (kind === 'array') return write(native, fd, { ...p, values: Buffer.alloc(p.values.length) }, mode);
  const keys = mode === 'single' ? range(0, p.count).map((i) => p.keys.subarray(i * p.keySize, (i + 1) * p.keySize)) : [];
  const started = performance.now();
  if (mode === 'batch') native.mapDeleteBatch(fd, p.keys, p.count);
  else for (let i = 0; i < p.count; i++) native.mapDelete(fd, keys[i]);
  return performance.now() - started;
}

interface Costs {
  /** ms for the whole operation */
  insert: number;
  overwrite: number;
  churn: number;
  remove: number;
}

/** One trial of one variant in fresh (empty) maps. */
function trial(native: NativeAddon, object: LoadedObject, v: Variant, mode: Mode): Costs {
  const { fd, keySize, valueSize } = object.maps[v.map];
  const n = fullCount(v.role);
  const all = entries(v.role, keySize, valueSize, range(0, n));
  const insert = write(native, fd, all, mode);
  const overwrite = write(native, fd, entries(v.role, keySize, valueSize, range(0, n), 1), mode);
  // the 1% change: svc rewrites one slot per changed service; be gains one backend and loses one
  let churn = 0;
  let present = range(0, n);
  if (v.role === 'svc') churn = write(native, fd, entries('svc', keySize, valueSize, range(0, CHURN).map((i) => i * 100 * SLOTS + 1), 2), mode);
  if (v.role === 'be') {
    const gone = new Set(range(0, CHURN).map((i) => i * 100 * BACKENDS_PER_SERVICE));
    churn = write(native, fd, entries('be', keySize, valueSize, range(n, CHURN)), mode);
    churn += remove(native, fd, v.kind, entries('be', keySize, valueSize, [...gone]), mode);
    present = range(0, n + CHURN).filter((i) => !gone.has(i));
  }
  const removed = remove(native, fd, v.kind, entries(v.role, keySize, valueSize, present), mode);
  return { insert, overwrite, churn, remove: removed };
}

const medianOf = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function memlockBytes(fd: number): number {
  const line = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').split('\n').find((l) => l.startsWith('memlock:'));
  return line ? Number(line.split(/\s+/)[1]) : NaN;
}

function compileVariants(dir: string): string {
  const out = join(dir, 'map-costs.bpf.o');
  const arch = execFileSync('uname', ['-m'], { encoding: 'utf8' }).trim();
  execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-Wall', '-Werror', `-I/usr/include/${arch}-linux-gnu`, `-I${join(packageRoot, 'bpf')}`, '-c', join(packageRoot, 'bench', 'map-costs.bpf.c'), '-o', out]);
  return out;
}

interface Measured {
  costs: Record<Mode, Record<string, Costs>>;
  memory: Record<string, number>;
}

function measureAll(native: NativeAddon, objectPath: string, pinDir: string): Measured {
  const runs: Record<Mode, Record<string, Costs[]>> = { batch: {}, single: {} };
  const memory: Record<string, number> = {};
  for (let t = 0; t < TRIALS; t++) {
    for (const mode of ['batch', 'single'] as const) {
      const object = native.openObject(objectPath, pinDir);
      try {
        for (const v of VARIANTS) {
          (runs[mode][v.map] ??= []).push(trial(native, object, v, mode));
          memory[v.map] = memlockBytes(object.maps[v.map].fd);
        }
      } finally {
        native.closeObject(object.id);
      }
    }
  }
  const med = (list: Costs[]): Costs => ({
    insert: medianOf(list.map((c) => c.insert)),
    overwrite: medianOf(list.map((c) => c.overwrite)),
    churn: medianOf(list.map((c) => c.churn)),
    remove: medianOf(list.map((c) => c.remove)),
  });
  const costs = { batch: {}, single: {} } as Record<Mode, Record<string, Costs>>;
  for (const mode of ['batch', 'single'] as const) for (const v of VARIANTS) costs[mode][v.map] = med(runs[mode][v.map]);
  return { costs, memory };
}

const ns = (ms: number, count: number) => `${Math.round((ms * 1e6) / count)}`;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

function perElementTable(m: Measured): Table {
  return {
    title: 'Kernel cost per map element, by map kind and flag (batched / one syscall per element)',
    notes: [
      `ns per element, median of ${TRIALS} trials in fresh maps; inserts into an empty map, overwrites of existing keys, deletes (an array cannot delete: the empty value is written instead)`,
      `elements: ${fullCount('svc')} service entries, ${fullCount('be')} backends, ${fullCount('rnat')} reverse NAT (a full sync of ${SERVICES} × ${BACKENDS_PER_SERVICE}); memory: the map's memlock charge when full`,
    ],
    columns: ['map', 'kind', 'memory', 'insert batch', 'insert single', 'overwrite batch', 'overwrite single', 'delete batch', 'delete single'],
    rows: VARIANTS.map((v) => {
      const n = fullCount(v.role);
      const b = m.costs.batch[v.map];
      const s = m.costs.single[v.map];
      return [ROLE_TEXT[v.role], v.kind, mib(m.memory[v.map]), ns(b.insert, n), ns(s.insert, n), ns(b.overwrite, n), ns(s.overwrite, n), ns(b.remove, n), ns(s.remove, n)];
    }),
  };
}

function layoutCost(m: Measured, layout: Layout, mode: Mode, what: 'insert' | 'churn'): number {
  return (['svc', 'be', 'rnat'] as const).reduce((sum, role) => sum + m.costs[mode][layout.maps[role]][what], 0);
}

function layoutTable(m: Measured): Table {
  const base = LAYOUTS[0];
  const cell = (layout: Layout, mode: Mode, what: 'insert' | 'churn') => {
    const ms = layoutCost(m, layout, mode, what);
    const ratio = ms / layoutCost(m, base, mode, what);
    return `${ms.toFixed(what === 'insert' ? 1 : 2)} ms (${ratio.toFixed(2)}×)`;
  };
  return {
    title: `Kernel time of a full sync and of a 1% change of ${SERVICES} × ${BACKENDS_PER_SERVICE}, per map layout (IPv4)`,
    notes: [
      'the per-element medians above summed over the three maps of each layout; (×) = against the layout before, measured in the same run;',
      `full sync: ${fullCount('svc') + fullCount('be') + fullCount('rnat')} inserts into empty maps; 1% change: ${CHURN} backends added, ${CHURN} removed, ${CHURN} slots rewritten; an unchanged pass writes nothing in any layout`,
    ],
    columns: ['layout', 'memory', 'full sync, batched', 'full sync, single', '1% change, batched', '1% change, single'],
    rows: LAYOUTS.map((l) => [
      l.name,
      mib((['svc', 'be', 'rnat'] as const).reduce((sum, role) => sum + m.memory[l.maps[role]], 0)),
      cell(l, 'batch', 'insert'),
      cell(l, 'single', 'insert'),
      cell(l, 'batch', 'churn'),
      cell(l, 'single', 'churn'),
    ]),
  };
}

function figures(m: Measured): Figure[] {
  const chosen = LAYOUTS[LAYOUTS.length - 1];
  const before = LAYOUTS[0];
  return [
    figure(
      'datapath.maps.full',
      `kernel time of the full-sync writes of ${SERVICES} × ${BACKENDS_PER_SERVICE}, chosen layout, batched`,
      layoutCost(m, chosen, 'batch', 'insert'),
      'ms',
      { what: 'the layout before (all hash, BPF_F_NO_PREALLOC), same writes', value: layoutCost(m, before, 'batch', 'insert') },
    ),
  ];
}

/** Measures every variant (root, bpffs, clang). */
export async function runMapCostsBench(): Promise<BenchResult> {
  if (process.getuid?.() !== 0) throw new Error('the map-cost benchmark needs root (BPF maps): run it as root');
  const native = loadNative();
  const dir = mkdtempSync(join(tmpdir(), 'cm-map-costs-'));
  const pinDir = `/sys/fs/bpf/cm-map-costs-${process.pid}`;
  try {
    const measured = measureAll(native, compileVariants(dir), pinDir);
    return { name: 'map-costs', tables: [perElementTable(measured), layoutTable(measured)], figures: figures(measured) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(pinDir, { recursive: true, force: true });
  }
}

runStandalone(import.meta.url, runMapCostsBench);
