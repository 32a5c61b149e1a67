/**
 * Where the set of peers comes from (for the agent and the kvstoremesh), kept current at run time: the `--clustermesh-config`
 * directory (the `clustermesh-remotes` Secret mounted as files), or that Secret read from the
 * Kubernetes API. Both deliver a whole `PeerConfigSet` whenever it changes; certificate material
 * stays in memory (PEM strings), never copied to disk.
 */
import { existsSync, readFileSync, readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, isAbsolute, join } from 'node:path';
import type { KubeConfig, V1Secret } from '@kubernetes/client-node';
import { UserError, errorMessage } from '../errors.js';
import { ResourceInformer } from '../k8s/informer.js';
import { namedSecret } from '../k8s/resources.js';
import type { Logger } from '../log.js';
import {
  entryResolver,
  parsePeerConfigSet,
  samePeerConfigSet,
  type FileResolver,
  type PeerConfigSet,
} from './peer-config.js';

export interface PeerConfigSource {
  /** Delivers the current set, then each changed set; resolves once the first one was delivered. */
  start(onSet: (set: PeerConfigSet) => void): Promise<void>;
  stop(): Promise<void>;
}

export const DEFAULT_REMOTES_SECRET = 'clustermesh-remotes';

/** Delivers a set only when it differs from the last one delivered. */
class SetDelivery {
  private last: PeerConfigSet | null = null;
  constructor(private readonly onSet: (set: PeerConfigSet) => void) {}

  deliver(set: PeerConfigSet): void {
    if (this.last && samePeerConfigSet(this.last, set)) return;
    this.last = set;
    this.onSet(set);
  }
}

// ---------------------------------------------------------------- directory

export interface DirectoryPeerSourceOptions {
  dir: string;
  log: Logger;
  /** Quiet time after a file event before the directory is read again (default 100 ms). */
  debounceMs?: number;
  /** A full read every so often, for filesystems whose events fs.watch misses (default 10 s). */
  pollIntervalMs?: number;
}

/**
 * Watches the directory itself, not the files: a Kubernetes Secret volume updates by swapping the
 * `..data` symlink, which changes every file at once with a rename in the directory.
 */
export class DirectoryPeerSource implements PeerConfigSource {
  private watcher: FSWatcher | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private poll: NodeJS.Timeout | null = null;
  private delivery: SetDelivery | null = null;

  constructor(private readonly opts: DirectoryPeerSourceOptions) {}

  async start(onSet: (set: PeerConfigSet) => void): Promise<void> {
    const { dir } = this.opts;
    if (!existsSync(dir) || !statSync(dir).isDirectory())
      throw new UserError(
        `--clustermesh-config ${dir} is not a directory; create it (empty means no peers) or mount the ${DEFAULT_REMOTES_SECRET} Secret there`,
      );
    this.delivery = new SetDelivery(onSet);
    this.watcher = watch(dir, () => this.scheduleRead());
    this.watcher.on('error', (err) =>
      this.opts.log.warn(
        { dir, err: err.message },
        'watching the peer config directory failed; polling only',
      ),
    );
    this.poll = setInterval(() => this.read(), this.opts.pollIntervalMs ?? 10_000);
    this.poll.unref();
    this.read();
  }

  async stop(): Promise<void> {
    this.watcher?.close();
    this.watcher = null;
    if (this.debounce) clearTimeout(this.debounce);
    if (this.poll) clearInterval(this.poll);
    this.delivery = null;
  }

  private scheduleRead(): void {
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.read(), this.opts.debounceMs ?? 100);
  }

  private read(): void {
    if (!this.delivery) return;
    const { dir, log } = this.opts;
    let entries: Map<string, string>;
    try {
      entries = readDirectoryEntries(dir);
    } catch (err) {
      log.warn(
        { dir },
        `cannot read the peer config directory ${dir} (${errorMessage(err)}); keeping the last peers`,
      );
      return;
    }
    this.delivery.deliver(parsePeerConfigSet(entries, directoryResolver(dir, entries)));
  }
}

/** Every regular file of `dir` (symlinks followed), by name; hidden entries (`..data`) skipped. */
function readDirectoryEntries(dir: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const name of readdirSync(dir)) {
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    try {
      if (statSync(path).isFile()) entries.set(name, readFileSync(path, 'utf8'));
    } catch {
      // removed between readdir and read (a Secret update in progress): the next event reads again
    }
  }
  return entries;
}

/**
 * A relative path is relative to the directory. An absolute path that does not exist falls back to
 * the directory's file of that name: the YAML names files where the Helm chart mounts the Secret,
 * and the agent may see the same Secret elsewhere (the lab, a test).
 */
function directoryResolver(dir: string, entries: ReadonlyMap<string, string>): FileResolver {
  return (reference) => {
    const path = isAbsolute(reference) ? reference : join(dir, reference);
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      if (isAbsolute(reference) && entries.has(basename(reference))) return entries.get(basename(reference))!;
      throw new Error(`cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`);
    }
  };
}

// ---------------------------------------------------------------- Kubernetes Secret

export interface SecretPeerSourceOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** default `clustermesh-remotes` */
  secretName?: string;
  log: Logger;
  restartMinMs?: number;
  restartMaxMs?: number;
}

/** Pure: the Secret's entries as text (data is base64; stringData only on objects not yet stored). */
export function secretEntries(secret: V1Secret | undefined): Map<string, string> {
  const entries = new Map<string, string>();
  for (const [key, value] of Object.entries(secret?.data ?? {}))
    entries.set(key, Buffer.from(value, 'base64').toString('utf8'));
  for (const [key, value] of Object.entries(secret?.stringData ?? {})) entries.set(key, value);
  return entries;
}

/**
 * List+watch of the one Secret (field selector on its name), restarted with backoff after any
 * error. An absent Secret is an empty set of peers.
 */
export class SecretPeerSource implements PeerConfigSource {
  private informer: ResourceInformer<V1Secret> | null = null;
  private delivery: SetDelivery | null = null;

  constructor(private readonly opts: SecretPeerSourceOptions) {}

  private get secretName(): string {
    return this.opts.secretName ?? DEFAULT_REMOTES_SECRET;
  }

  async start(onSet: (set: PeerConfigSet) => void): Promise<void> {
    const { kubeConfig, namespace, log } = this.opts;
    this.delivery = new SetDelivery(onSet);
    const secret = `${namespace}/${this.secretName}`;
    this.informer = new ResourceInformer<V1Secret>({
      ...namedSecret(kubeConfig, namespace, this.secretName),
      kubeConfig,
      backoff: { minMs: this.opts.restartMinMs, maxMs: this.opts.restartMaxMs ?? 10_000, jitter: true },
      onError: (err, { delayMs }) =>
        log.warn(
          { secret },
          `reading the peers Secret failed (${errorMessage(err)}); retrying in ${Math.round(delayMs)} ms`,
        ),
    });
    this.informer.onChange(() => this.read());
    void this.informer.synced.then(() => this.read());
    await this.informer.start();
  }

  async stop(): Promise<void> {
    await this.informer?.stop();
    this.delivery = null;
  }

  private read(): void {
    if (!this.informer?.isSynced || !this.delivery) return;
    const entries = secretEntries(this.informer.get(this.secretName, this.opts.namespace));
    const origin = `Secret ${this.opts.namespace}/${this.secretName}`;
    this.delivery.deliver(parsePeerConfigSet(entries, entryResolver(entries, origin)));
  }
}
