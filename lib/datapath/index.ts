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
import { constants } from './codecs.js';
import type { EntryBuffer } from './encode.js';
import { IPCACHE_MAPS, IpcacheWriter, type IpcacheEntry, type IpcacheStats, type IpcacheValue } from './ipcache.js';
import { Planner } from './plan.js';
import { FAMILIES, FAMILY_MAPS, MANAGED_MAPS, decodeMaps, servicesOf, type ArrayMap, type ArrayMirror, type MapState, type PackedEntries, type ServiceMap } from './state.js';
import type { DatapathService } from './types.js';

export type { DatapathBackend, DatapathService, BackendState } from './types.js';
export type { IpcacheEntry, IpcacheStats, IpcacheValue } from './ipcache.js';

/** Maps the programs own (per-socket state, their counters); pinned too, never written by reconcile. */
const PROGRAM_MAPS = ['cm_sock4', 'cm_sock6', 'cm_stats'] as const;
const PINNED_MAPS = [...MANAGED_MAPS, ...PROGRAM_MAPS, ...IPCACHE_MAPS];

export interface DatapathOptions {
  /** a directory on bpffs, one per agent, e.g. /sys/fs/bpf/clustermesh/<node> */
  pinDir: string;
  /** default: bpf/sock_lb.o of this package */
  objectPath?: string;
  /**
   * batched map writes (default true: the service hashes in batch syscalls, the arrays by stores
   * into their mapped memory); false writes every entry with a syscall of its own (benchmarks)
   */
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

/**
 * What the programs counted since the maps were pinned (summed over CPUs). The programs always
 * let the syscall proceed, so a failure inside them is only visible here.
 */
export interface ProgramStats {
  /** translations whose socket got no storage (out of memory): they work, but recvmsg/getpeername show the backend */
  sockStateFailed: number;
  /** sockets that addressed more frontends than they keep (bpf/clustermesh.h CM_SOCK_PEERS) and replaced one */
  sockPeerReplaced: number;
}

const PROGRAM_STATS: Record<keyof ProgramStats, number> = {
  sockStateFailed: constants.CM_STAT_SOCK_STATE_FAILED,
  sockPeerReplaced: constants.CM_STAT_SOCK_PEER_REPLACED,
};

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

const ARRAY_MAPS = FAMILIES.flatMap((family) => [FAMILY_MAPS[family].be, FAMILY_MAPS[family].rnat]);
const SERVICE_MAPS = FAMILIES.map((family) => FAMILY_MAPS[family].svc);

export class Datapath {
  private planner: Planner;
  private readonly ipcache: IpcacheWriter;
  private closed = false;
  /** the backend and rev NAT arrays' memory (BPF_F_MMAPABLE, bpf/sock_lb.c), mapped once */
  private readonly mapped: Record<ArrayMap, ArrayBuffer>;
  /** the planner's view of each array: the mapped memory, written by plain stores */
  private arrays!: Record<ArrayMap, ArrayMirror>;

  private constructor(
    private readonly native: NativeAddon,
    private readonly loaded: LoadedObject,
    private readonly batch: boolean,
  ) {
    this.mapped = Object.fromEntries(ARRAY_MAPS.map((name) => [name, native.mapMmap(loaded.maps[name].fd)])) as Record<ArrayMap, ArrayBuffer>;
    this.planner = new Planner(this.readMaps());
    this.ipcache = new IpcacheWriter(native, { cm_ipcache4: loaded.maps.cm_ipcache4, cm_ipcache6: loaded.maps.cm_ipcache6 }, batch);
  }

  static async open(options: DatapathOptions): Promise<Datapath> {
    const native = loadNative();
    const objectPath = options.objectPath ?? join(packageRoot, 'bpf', 'sock_lb.o');
    if (!existsSync(objectPath)) throw new Error(`BPF object missing at ${objectPath}: run \`make -C bpf\` (or npm run setup)`);
    const loaded = native.openObject(objectPath, options.pinDir);
    try {
      const missing = PINNED_MAPS.filter((m) => !loaded.maps[m]);
      if (missing.length > 0) throw new Error(`${objectPath} lacks maps ${missing.join(', ')}: rebuild it with \`make -C bpf\``);
      return new Datapath(native, loaded, options.batch ?? true);
    } catch (error) {
      // e.g. maps holding what this version cannot decode: release every fd of the object
      native.closeObject(loaded.id);
      throw error;
    }
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

  /**
   * Makes the maps equal to `desired`. Bad input throws before any write. Services equal to
   * what the previous call listed cost a compare; only what changed is encoded and written.
   */
  reconcile(desired: readonly DatapathService[]): ReconcileStats {
    this.assertOpen();
    const started = performance.now();
    const plan = this.planner.plan(desired);
    try {
      for (const step of plan.steps) this.write(step);
    } catch (error) {
      // A failed write leaves the maps partly updated: trust the kernel's view from here on.
      this.planner = new Planner(this.readMaps());
      throw error;
    }
    plan.commit();
    return {
      updates: plan.updates,
      deletes: plan.deletes,
      services: desired.length,
      backends: this.planner.backendCount,
      durationMs: performance.now() - started,
    };
  }

  /** The services the maps hold now, read back from the kernel. */
  dump(): DatapathService[] {
    this.assertOpen();
    return servicesOf(this.readMaps());
  }

  /** Makes the remote ipcache maps (address → identity, cluster) equal to `desired`, differentially. */
  reconcileIpcache(desired: readonly IpcacheEntry[]): IpcacheStats {
    this.assertOpen();
    return this.ipcache.reconcile(desired);
  }

  /** The remote ipcache entries the maps hold now. */
  dumpIpcache(): IpcacheEntry[] {
    this.assertOpen();
    return this.ipcache.dump();
  }

  /** The kernel's longest-prefix match of an address in the remote ipcache; null when none. */
  lookupIpcache(ip: string): IpcacheValue | null {
    this.assertOpen();
    return this.ipcache.lookup(ip);
  }

  /** The programs' counters (cm_stats), summed over CPUs. */
  programStats(): ProgramStats {
    this.assertOpen();
    const { fd, valueSize } = this.loaded.maps.cm_stats;
    const key = Buffer.alloc(4);
    const cpus = this.native.possibleCpus();
    const read = (index: number): number => {
      key.writeUInt32LE(index);
      const values = this.native.mapLookup(fd, key, valueSize * cpus);
      let sum = 0n;
      for (let cpu = 0; cpu < cpus && values; cpu++) sum += values.readBigUInt64LE(cpu * valueSize);
      return Number(sum);
    };
    return Object.fromEntries(Object.entries(PROGRAM_STATS).map(([name, index]) => [name, read(index)])) as unknown as ProgramStats;
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

  private write(step: EntryBuffer): void {
    const { fd } = this.loaded.maps[step.map];
    const { keys, values, keySize, valueSize, count } = step;
    const array = this.arrays[step.map as ArrayMap];
    if (array && this.batch) {
      // stores into the map's memory (the ordering that keeps each entry whole is ArrayMirror's)
      for (let i = 0; i < count; i++) array.set(keys.readUInt32LE(i * keySize), values, i * valueSize);
      return;
    }
    if (this.batch) {
      if (step.op === 'update') this.native.mapUpdateBatch(fd, keys, values, count);
      else this.native.mapDeleteBatch(fd, keys, count);
      return;
    }
    for (let i = 0; i < count; i++) {
      const key = keys.subarray(i * keySize, (i + 1) * keySize);
      if (step.op === 'update') this.native.mapUpdate(fd, key, values.subarray(i * valueSize, (i + 1) * valueSize));
      else this.native.mapDelete(fd, key);
    }
  }

  /** The service hashes read back; the arrays are their mapped memory. */
  private readMaps(): MapState {
    const dumps = {} as Record<ServiceMap, PackedEntries>;
    for (const name of SERVICE_MAPS) {
      const { fd, keySize, valueSize } = this.loaded.maps[name];
      dumps[name] = this.native.mapDump(fd, keySize, valueSize);
    }
    const state = decodeMaps(dumps, this.mapped);
    this.arrays = Object.fromEntries(FAMILIES.flatMap((f) => [[FAMILY_MAPS[f].be, state.backends[f]], [FAMILY_MAPS[f].rnat, state.revNats[f]]])) as Record<ArrayMap, ArrayMirror>;
    return state;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('datapath is closed: open it again with Datapath.open()');
  }
}
