/**
 * Typed loader of the clustermesh_native addon (native/src/*.cc over the system libbpf).
 * The .node file is found from the package root, so this works from source (ts-jest) and from dist/.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface FieldLayout {
  offset: number;
  size: number;
}

export interface StructLayout {
  size: number;
  fields: Record<string, FieldLayout>;
}

export interface MapInfo {
  fd: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

export interface ProgramInfo {
  name: string;
  fd: number;
  /** the kernel's program id (what progQuery reports) */
  id: number;
  attachType: number;
}

export interface LoadedObject {
  id: number;
  maps: Record<string, MapInfo>;
  programs: ProgramInfo[];
}

export interface AttachedProgram {
  id: number;
  name: string;
}

export interface MapDump {
  keys: Buffer;
  values: Buffer;
  count: number;
}

/**
 * Every function throws an Error whose message is "ECODE: sentence", with `code` and `errno` set.
 * Map functions take the fd of a map of an open object and check every buffer, size and count
 * against that map's key and value sizes before the syscall (EINVAL naming the map otherwise).
 */
export interface NativeAddon {
  /**
   * Loads the object; maps pinned in pinDir are reused, missing ones are created and pinned there.
   * A failure leaves no fd open; a rejected program's whole verifier log is in the message.
   */
  openObject(objectPath: string, pinDir: string): LoadedObject;
  /** Releases the object's fds; pins and cgroup attachments stay. */
  closeObject(id: number): void;
  /** Values per key of a per-CPU map (each rounded up to 8 bytes). */
  possibleCpus(): number;
  /** valueSize: the map's value size (× possibleCpus() for a per-CPU map) */
  mapLookup(fd: number, key: Buffer, valueSize: number): Buffer | null;
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags?: number): void;
  mapDelete(fd: number, key: Buffer): boolean;
  mapNextKey(fd: number, key: Buffer | null, keySize: number): Buffer | null;
  mapDump(fd: number, keySize: number, valueSize: number): MapDump;
  /** keys/values hold at least `count` packed entries. */
  mapUpdateBatch(fd: number, keys: Buffer, values: Buffer, count: number): void;
  mapDeleteBatch(fd: number, keys: Buffer, count: number): void;
  /**
   * The memory of a BPF_F_MMAPABLE array (element i at i × valueSize rounded up to 8): stores land
   * in the map without a syscall. closeObject detaches it (it reads as empty from then on).
   */
  mapMmap(fd: number): ArrayBuffer;
  progQuery(cgroupDir: string, attachType: number): AttachedProgram[];
  /** BPF_F_ALLOW_MULTI; with replaceProgId != 0 the attached program is swapped in place. */
  progAttach(progFd: number, cgroupDir: string, attachType: number, replaceProgId: number): void;
  progDetach(progId: number, cgroupDir: string, attachType: number): void;
  layouts(): Record<string, StructLayout>;
  constants(): Record<string, number>;
}

const ADDON_RELATIVE_PATH = join('native', 'build', 'Release', 'clustermesh_native.node');

/** The nearest directory at or above `start` holding a package.json. */
export function findPackageRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${start}: run from inside the clustermesh package`);
  }
}

export const packageRoot = findPackageRoot(dirname(fileURLToPath(import.meta.url)));

let addon: NativeAddon | undefined;

export function loadNative(): NativeAddon {
  if (addon) return addon;
  const path = join(packageRoot, ADDON_RELATIVE_PATH);
  if (!existsSync(path)) {
    throw new Error(`native addon missing at ${path}: run \`npm run setup\` (or \`npm run build:native\`)`);
  }
  addon = createRequire(import.meta.url)(path) as NativeAddon;
  return addon;
}
