/**
 * The socket-LB datapath (DESIGN §5, ARCHITECTURE "Datapath module"): loads bpf/sock_lb.o, keeps
 * its maps pinned, and makes them equal to a desired state with the fewest (batched) writes.
 * Maps and cgroup attachments outlive this object and the process, so traffic keeps flowing
 * while the agent is down; a new process restores IDs from the pinned maps.
 */
import { existsSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadNative, packageRoot, type LoadedObject, type NativeAddon } from '../../native/index.js';
import { PROGRAM_HOOKS, ourPrograms, planAttach, type ProgramName } from './attach.js';
import {
  MANAGED_MAPS,
  desiredEntries,
  diffEntries,
  emptyEntries,
  entriesToServices,
  restoreIds,
  type EntryTable,
  type Ids,
  type ManagedMap,
  type MapEntries,
  type WriteStep,
} from './plan.js';
import type { DatapathService } from './types.js';

export type { DatapathBackend, DatapathService, BackendState } from './types.js';

/** Maps the programs own (per-socket state); pinned too, never written by reconcile. */
const SOCKET_MAPS = ['cm_lb4_sk_rnat', 'cm_lb4_affin', 'cm_lb6_sk_rnat', 'cm_lb6_affin'] as const;
const PINNED_MAPS = [...MANAGED_MAPS, ...SOCKET_MAPS];

export interface DatapathOptions {
  /** a directory on bpffs, one per agent, e.g. /sys/fs/bpf/clustermesh/<node> */
  pinDir: string;
  /** default: bpf/sock_lb.o of this package */
  objectPath?: string;
  /** batched map writes (default true); false writes one entry per syscall (benchmarks) */
  batch?: boolean;
}

export interface ReconcileStats {
  /** map entries created or changed */
  updates: number;
  /** map entries removed */
  deletes: number;
  services: number;
  backends: number;
  durationMs: number;
}

function toTable(dump: { keys: Buffer; values: Buffer; count: number }, keySize: number, valueSize: number): EntryTable {
  const table: EntryTable = new Map();
  for (let i = 0; i < dump.count; i++) {
    table.set(
      dump.keys.toString('latin1', i * keySize, (i + 1) * keySize),
      dump.values.toString('latin1', i * valueSize, (i + 1) * valueSize),
    );
  }
  return table;
}

function packed(strings: readonly string[], size: number): Buffer {
  const buf = Buffer.allocUnsafe(strings.length * size);
  strings.forEach((s, i) => buf.write(s, i * size, size, 'latin1'));
  return buf;
}

function hookOf(native: NativeAddon, name: ProgramName): number {
  const attachType = native.constants()[PROGRAM_HOOKS[name]];
  if (attachType === undefined) throw new Error(`the native addon does not know ${PROGRAM_HOOKS[name]}: rebuild it (npm run build:native)`);
  return attachType;
}

function detachOurs(native: NativeAddon, cgroupDir: string): void {
  for (const name of Object.keys(PROGRAM_HOOKS) as ProgramName[]) {
    const attachType = hookOf(native, name);
    for (const id of ourPrograms(name, native.progQuery(cgroupDir, attachType))) native.progDetach(id, cgroupDir, attachType);
  }
}

export class Datapath {
  private mirror: MapEntries;
  private ids: Ids;
  private closed = false;

  private constructor(
    private readonly native: NativeAddon,
    private readonly loaded: LoadedObject,
    private readonly batch: boolean,
  ) {
    this.mirror = this.readMaps();
    this.ids = restoreIds(this.mirror);
  }

  static async open(options: DatapathOptions): Promise<Datapath> {
    const native = loadNative();
    const objectPath = options.objectPath ?? join(packageRoot, 'bpf', 'sock_lb.o');
    if (!existsSync(objectPath)) throw new Error(`BPF object missing at ${objectPath}: run \`make -C bpf\` (or npm run setup)`);
    const loaded = native.openObject(objectPath, options.pinDir);
    const missing = PINNED_MAPS.filter((m) => !loaded.maps[m]);
    if (missing.length > 0) {
      native.closeObject(loaded.id);
      throw new Error(`${objectPath} lacks maps ${missing.join(', ')}: rebuild it with \`make -C bpf\``);
    }
    return new Datapath(native, loaded, options.batch ?? true);
  }

  /** Attaches all 8 programs to a cgroup v2 directory; again is a no-op, after a restart a swap. */
  attach(cgroupDir: string): void {
    this.assertOpen();
    for (const program of this.loaded.programs) {
      if (!(program.name in PROGRAM_HOOKS)) continue;
      const attached = this.native.progQuery(cgroupDir, program.attachType);
      const plan = planAttach({ id: program.id, name: program.name }, attached);
      if (plan.attach) this.native.progAttach(program.fd, cgroupDir, program.attachType, plan.replaceId);
      for (const id of plan.detachIds) this.native.progDetach(id, cgroupDir, program.attachType);
    }
  }

  /** Removes our programs (whichever process loaded them) from the cgroup. */
  detach(cgroupDir: string): void {
    this.assertOpen();
    detachOurs(this.native, cgroupDir);
  }

  /** Makes the maps equal to `desired`. Bad input throws before any write. */
  reconcile(desired: readonly DatapathService[]): ReconcileStats {
    this.assertOpen();
    const started = performance.now();
    let steps: WriteStep[] = [];
    try {
      const target = desiredEntries(desired, this.ids);
      steps = diffEntries(this.mirror, target);
      for (const step of steps) this.apply(step);
    } catch (error) {
      // A failed write leaves the maps partly updated: trust the kernel's view from here on.
      this.mirror = this.readMaps();
      this.ids = restoreIds(this.mirror);
      throw error;
    }
    const count = (op: WriteStep['op']) => steps.filter((s) => s.op === op).reduce((n, s) => n + s.keys.length, 0);
    return {
      updates: count('update'),
      deletes: count('delete'),
      services: desired.length,
      backends: this.mirror.cm_lb4_be.size + this.mirror.cm_lb6_be.size,
      durationMs: performance.now() - started,
    };
  }

  /** The services the maps hold now, read back from the kernel. */
  dump(): DatapathService[] {
    this.assertOpen();
    return entriesToServices(this.readMaps());
  }

  /** Releases fds; the pinned maps and the cgroup attachments stay, and so does the datapath. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.closeObject(this.loaded.id);
  }

  /** Detaches our programs from `cgroupDir` (if given) and removes our pins (tests, lab teardown). */
  static destroy(pinDir: string, cgroupDir?: string): void {
    const native = loadNative();
    if (cgroupDir !== undefined && existsSync(cgroupDir)) detachOurs(native, cgroupDir);
    if (!existsSync(pinDir)) return;
    for (const name of PINNED_MAPS) if (existsSync(join(pinDir, name))) unlinkSync(join(pinDir, name));
    if (readdirSync(pinDir).length === 0) rmdirSync(pinDir);
  }

  private apply(step: WriteStep): void {
    const map = this.loaded.maps[step.map];
    const table = this.mirror[step.map];
    if (step.op === 'update') this.writeUpdates(map.fd, map.keySize, map.valueSize, step);
    else this.writeDeletes(map.fd, map.keySize, step);
    if (step.op === 'update') step.keys.forEach((k, i) => table.set(k, step.values[i]));
    else step.keys.forEach((k) => table.delete(k));
  }

  private writeUpdates(fd: number, keySize: number, valueSize: number, step: WriteStep): void {
    if (this.batch) {
      this.native.mapUpdateBatch(fd, packed(step.keys, keySize), packed(step.values, valueSize), step.keys.length);
      return;
    }
    step.keys.forEach((k, i) => this.native.mapUpdate(fd, Buffer.from(k, 'latin1'), Buffer.from(step.values[i], 'latin1')));
  }

  private writeDeletes(fd: number, keySize: number, step: WriteStep): void {
    if (this.batch) {
      this.native.mapDeleteBatch(fd, packed(step.keys, keySize), step.keys.length);
      return;
    }
    for (const k of step.keys) this.native.mapDelete(fd, Buffer.from(k, 'latin1'));
  }

  private readMaps(): MapEntries {
    const entries = emptyEntries();
    for (const name of MANAGED_MAPS as readonly ManagedMap[]) {
      const { fd, keySize, valueSize } = this.loaded.maps[name];
      entries[name] = toTable(this.native.mapDump(fd, keySize, valueSize), keySize, valueSize);
    }
    return entries;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('datapath is closed: open it again with Datapath.open()');
  }
}
