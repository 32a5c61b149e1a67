/**
 * What the kernel charges per map element, for each map kind and flag the datapath could use
 * (bench/map-costs.bpf.c: the service, backend and reverse-NAT maps of bpf/sock_lb.c with the same
 * keys and capacities, as a preallocated or BPF_F_NO_PREALLOC hash, or an array indexed by ID; the
 * service map with one entry per slot or with the first K backend IDs inline in slot 0),
 * batched and one syscall per element, side by side with the first layout of bpf/sock_lb.c
 * (all three BPF_F_NO_PREALLOC hashes, one service entry per slot) as the baseline. Then the same
 * numbers summed per layout for the writes of a full sync of 30k services × 4 backends and of a
 * 1% change.
 * Run: npx tsc -p tsconfig.json && node dist/bench/map-costs.js   (root; bpffs mounted; clang)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { codecs, constants } from '../lib/datapath/codecs.js';
import { ArrayMirror } from '../lib/datapath/state.js';
import { loadNative, packageRoot, type LoadedObject, type NativeAddon } from '../native/index.js';
import { type BenchResult, type Figure, type Table, envInt, figure, runStandalone } from './report.js';

const SERVICES = envInt('BENCH_MAP_SERVICES', 30_000);
const BACKENDS_PER_SERVICE = 4;
const TRIALS = envInt('BENCH_MAP_TRIALS', 5);
/** 1% of the services get one backend replaced: a new backend, its slot rewritten, the old one gone */
const CHURN = Math.ceil(SERVICES / 100);

type Role = 'svc' | 'be' | 'rnat';
type Kind = 'hash, BPF_F_NO_PREALLOC' | 'hash, preallocated' | 'array' | 'array, BPF_F_MMAPABLE';

interface Variant {
  map: string;
  role: Role;
  kind: Kind;
  /** service maps: how many backend IDs slot 0 holds inline (0: one entry per slot, the layout before) */
  inline?: number;
}

const INLINE_CHOICES = [4, 8, 16];

const VARIANTS: Variant[] = [
  { map: 'svc4_hash_np', role: 'svc', kind: 'hash, BPF_F_NO_PREALLOC' },
  { map: 'svc4_hash_pa', role: 'svc', kind: 'hash, preallocated' },
  ...INLINE_CHOICES.map((k): Variant => ({ map: `svc4_inline${k}_pa`, role: 'svc', kind: 'hash, preallocated', inline: k })),
  { map: 'be4_hash_np', role: 'be', kind: 'hash, BPF_F_NO_PREALLOC' },
  { map: 'be4_hash_pa', role: 'be', kind: 'hash, preallocated' },
  { map: 'be4_array', role: 'be', kind: 'array' },
  { map: 'be4_array_mmap', role: 'be', kind: 'array, BPF_F_MMAPABLE' },
  { map: 'rnat4_hash_np', role: 'rnat', kind: 'hash, BPF_F_NO_PREALLOC' },
  { map: 'rnat4_hash_pa', role: 'rnat', kind: 'hash, preallocated' },
  { map: 'rnat4_array', role: 'rnat', kind: 'array' },
  { map: 'rnat4_array_mmap', role: 'rnat', kind: 'array, BPF_F_MMAPABLE' },
];

function variantText(v: Variant): string {
  if (v.role === 'be') return 'backends (cm_lb4_be: ID → backend)';
  if (v.role === 'rnat') return 'reverse NAT (cm_lb4_rnat: index → VIP)';
  return v.inline ? `services, ${v.inline} backend IDs inline in slot 0` : 'services (cm_lb4_svc: VIP, port, slot → value), one entry per slot';
}

interface Layout {
  name: string;
  maps: Record<Role, string>;
  chosen?: boolean;
}

const CHOSEN = constants.CM_LB_INLINE_BACKENDS;

const LAYOUTS: Layout[] = [
  { name: 'first: all hash, BPF_F_NO_PREALLOC, a svc entry per slot (baseline)', maps: { svc: 'svc4_hash_np', be: 'be4_hash_np', rnat: 'rnat4_hash_np' } },
  { name: 'all hash, preallocated', maps: { svc: 'svc4_hash_pa', be: 'be4_hash_pa', rnat: 'rnat4_hash_pa' } },
  { name: 'svc hash no-prealloc; be, rnat arrays', maps: { svc: 'svc4_hash_np', be: 'be4_array', rnat: 'rnat4_array' } },
  { name: 'svc hash preallocated, a svc entry per slot; be, rnat arrays (the layout before)', maps: { svc: 'svc4_hash_pa', be: 'be4_array', rnat: 'rnat4_array' } },
  ...INLINE_CHOICES.map((k) => ({
    name: `svc hash preallocated, ${k} IDs inline; be, rnat arrays`,
    maps: { svc: `svc4_inline${k}_pa`, be: 'be4_array', rnat: 'rnat4_array' },
  })),
  {
    name: `svc hash preallocated, ${CHOSEN} IDs inline; be, rnat BPF_F_MMAPABLE arrays written by stores (chosen)`,
    maps: { svc: `svc4_inline${CHOSEN}_pa`, be: 'be4_array_mmap', rnat: 'rnat4_array_mmap' },
    chosen: true,
  },
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

/** Service map entries per service: slot 0 and one per backend beyond the inline ones. */
const entriesPerService = (v: Variant) => 1 + Math.max(0, BACKENDS_PER_SERVICE - (v.inline ?? 0));

/** The backend ID in slot `slot` (1..BACKENDS_PER_SERVICE) of `service`. */
const backendIdOf = (service: number, slot: number, generation: number) => service * BACKENDS_PER_SERVICE + slot + generation;

/** A service map value: the layout before (backend_id, count, rev_nat_index) or the inline one (bpf/clustermesh.h lb4_service). */
function serviceValue(v: Variant, value: Buffer, service: number, slot: number, generation: number): void {
  const inline = v.inline ?? 0;
  if (inline === 0) {
    value.writeUInt32LE(slot === 0 ? 0 : backendIdOf(service, slot, generation), 0);
    value.writeUInt16LE(slot === 0 ? BACKENDS_PER_SERVICE : 0, 4);
    value.writeUInt16LE(service + 1, 6);
  } else if (slot === 0) {
    value.writeUInt16LE(BACKENDS_PER_SERVICE, 0);
    value.writeUInt16LE(service + 1, 2);
    for (let s = 1; s <= Math.min(inline, BACKENDS_PER_SERVICE); s++) value.writeUInt32LE(backendIdOf(service, s, generation), 8 + 4 * (s - 1));
  } else value.writeUInt32LE(backendIdOf(service, slot, generation), 8);
}

/** Entry i of the variant's map (svc: service i / entriesPerService, its slot 0 or a slot beyond the inline ones; be: ID i + 1; rnat: index i + 1). */
function entries(v: Variant, keySize: number, valueSize: number, ids: number[], generation = 0): Packed {
  const perService = entriesPerService(v);
  return packed(ids.length, keySize, valueSize, (k, value, n) => {
    const i = ids[n];
    if (v.role === 'svc') {
      const service = Math.floor(i / perService);
      const slot = i % perService === 0 ? 0 : (v.inline ?? 0) + (i % perService);
      k.set([10, 200 + (service >> 16), (service >> 8) & 255, service & 255]);
      k.writeUInt16BE(80, 4);
      k.writeUInt16LE(slot, 6);
      k[8] = constants.CM_PROTO_TCP;
      serviceValue(v, value, service, slot, generation);
      return;
    }
    if (keySize === 2) k.writeUInt16LE(i + 1);
    else k.writeUInt32LE(i + 1);
    value.set([10, 202 + (i >> 16), (i >> 8) & 255, i & 255]);
    value.writeUInt16BE(8080 + generation, 4);
    if (v.role === 'be') value[6] = constants.CM_PROTO_TCP;
  });
}

const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);

function fullCount(v: Variant): number {
  return v.role === 'svc' ? SERVICES * entriesPerService(v) : v.role === 'be' ? SERVICES * BACKENDS_PER_SERVICE : SERVICES;
}

// ---- timing ----------------------------------------------------------------------------------------

type Mode = 'batch' | 'single';

/** `mapped`: the map's memory, where 'batch' means stores as the datapath makes them (no syscall). */
function write(native: NativeAddon, fd: number, p: Packed, mode: Mode, mapped?: ArrayMirror): number {
  const keys = mode === 'single' ? range(0, p.count).map((i) => p.keys.subarray(i * p.keySize, (i + 1) * p.keySize)) : [];
  const values = mode === 'single' ? range(0, p.count).map((i) => p.values.subarray(i * p.valueSize, (i + 1) * p.valueSize)) : [];
  const started = performance.now();
  if (mode === 'batch' && mapped) for (let i = 0; i < p.count; i++) mapped.set(p.keys.readUInt32LE(i * p.keySize), p.values, i * p.valueSize);
  else if (mode === 'batch') native.mapUpdateBatch(fd, p.keys, p.values, p.count);
  else for (let i = 0; i < p.count; i++) native.mapUpdate(fd, keys[i], values[i]);
  return performance.now() - started;
}

/** Deletes the keys; in an array (where nothing can be deleted) writes the empty value instead. */
function remove(native: NativeAddon, fd: number, kind: Kind, p: Packed, mode: Mode, mapped?: ArrayMirror): number {
  if (kind.startsWith('array')) return write(native, fd, { ...p, values: Buffer.alloc(p.values.length) }, mode, mapped);
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
  const { fd, keySize, valueSize, maxEntries } = object.maps[v.map];
  const portOffset = (v.role === 'be' ? codecs.lb4_backend : codecs.lb4_reverse_nat).fields.port.offset;
  const mapped = v.kind === 'array, BPF_F_MMAPABLE' ? new ArrayMirror(valueSize, portOffset, maxEntries, native.mapMmap(fd)) : undefined;
  const n = fullCount(v);
  const all = entries(v, keySize, valueSize, range(0, n));
  const insert = write(native, fd, all, mode, mapped);
  const overwrite = write(native, fd, entries(v, keySize, valueSize, range(0, n), 1), mode, mapped);
  // the 1% change: svc rewrites the entry of slot 1 per changed service (slot 0 itself when
  // inline); be gains one backend and loses one
  let churn = 0;
  let present = range(0, n);
  if (v.role === 'svc') {
    const slot1 = (i: number) => i * 100 * entriesPerService(v) + (v.inline ? 0 : 1);
    churn = write(native, fd, entries(v, keySize, valueSize, range(0, CHURN).map(slot1), 2), mode);
  }
  if (v.role === 'be') {
    const gone = new Set(range(0, CHURN).map((i) => i * 100 * BACKENDS_PER_SERVICE));
    churn = write(native, fd, entries(v, keySize, valueSize, range(n, CHURN)), mode, mapped);
    churn += remove(native, fd, v.kind, entries(v, keySize, valueSize, [...gone]), mode, mapped);
    present = range(0, n + CHURN).filter((i) => !gone.has(i));
  }
  const removed = remove(native, fd, v.kind, entries(v, keySize, valueSize, present), mode, mapped);
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
  valueSizes: Record<string, number>;
}

function measureAll(native: NativeAddon, objectPath: string, pinDir: string): Measured {
  const runs: Record<Mode, Record<string, Costs[]>> = { batch: {}, single: {} };
  const memory: Record<string, number> = {};
  const valueSizes: Record<string, number> = {};
  for (let t = 0; t < TRIALS; t++) {
    for (const mode of ['batch', 'single'] as const) {
      const object = native.openObject(objectPath, pinDir);
      try {
        for (const v of VARIANTS) {
          (runs[mode][v.map] ??= []).push(trial(native, object, v, mode));
          memory[v.map] = memlockBytes(object.maps[v.map].fd);
          valueSizes[v.map] = object.maps[v.map].valueSize;
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
  return { costs, memory, valueSizes };
}

const ns = (ms: number, count: number) => `${Math.round((ms * 1e6) / count)}`;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

function perElementTable(m: Measured): Table {
  return {
    title: 'Kernel cost per map element, by map kind and flag (batched / one syscall per element)',
    notes: [
      `ns per element, median of ${TRIALS} trials in fresh maps; inserts into an empty map, overwrites of existing keys, deletes (an array cannot delete: the empty value is written instead)`,
      'array, BPF_F_MMAPABLE: "batch" is plain stores into the mapped memory as the datapath makes them (lib/datapath/state.ts ArrayMirror), no syscall;',
      `elements: what a full sync of ${SERVICES} × ${BACKENDS_PER_SERVICE} writes into each map; value: its size in bytes; memory: the map's memlock charge (all of it preallocated, used or not)`,
    ],
    columns: ['map', 'kind', 'value', 'elements', 'memory', 'insert batch', 'insert single', 'overwrite batch', 'overwrite single', 'delete batch', 'delete single'],
    rows: VARIANTS.map((v) => {
      const n = fullCount(v);
      const b = m.costs.batch[v.map];
      const s = m.costs.single[v.map];
      return [variantText(v), v.kind, m.valueSizes[v.map], n, mib(m.memory[v.map]), ns(b.insert, n), ns(s.insert, n), ns(b.overwrite, n), ns(s.overwrite, n), ns(b.remove, n), ns(s.remove, n)];
    }),
  };
}

const variantOf = (map: string) => VARIANTS.find((v) => v.map === map)!;

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
      'the per-element medians above summed over the three maps of each layout; (×) = against the first layout, measured in the same run;',
      `full sync: inserts into empty maps (writes: the elements of the layout's three maps); 1% change: ${CHURN} backends added, ${CHURN} removed, ${CHURN} service entries rewritten; an unchanged pass writes nothing in any layout`,
    ],
    columns: ['layout', 'writes', 'memory', 'full sync, batched', 'full sync, single', '1% change, batched', '1% change, single'],
    rows: LAYOUTS.map((l) => [
      l.name,
      (['svc', 'be', 'rnat'] as const).reduce((sum, role) => sum + fullCount(variantOf(l.maps[role])), 0),
      mib((['svc', 'be', 'rnat'] as const).reduce((sum, role) => sum + m.memory[l.maps[role]], 0)),
      cell(l, 'batch', 'insert'),
      cell(l, 'single', 'insert'),
      cell(l, 'batch', 'churn'),
      cell(l, 'single', 'churn'),
    ]),
  };
}

function figures(m: Measured): Figure[] {
  const chosen = LAYOUTS.find((l) => l.chosen)!;
  const before = LAYOUTS[0];
  return [
    figure(
      'datapath.maps.full',
      `kernel time of the full-sync writes of ${SERVICES} × ${BACKENDS_PER_SERVICE}, chosen layout, batched`,
      layoutCost(m, chosen, 'batch', 'insert'),
      'ms',
      { what: 'the first layout (all hash, BPF_F_NO_PREALLOC, a service entry per slot), same state', value: layoutCost(m, before, 'batch', 'insert') },
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
