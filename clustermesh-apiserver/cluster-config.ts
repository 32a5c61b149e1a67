/**
 * The cluster config key (`cilium/cluster-config/<cluster>`) is the daemon's to keep: agents read
 * the cluster ID and capabilities from it and watch it as the link's pulse
 * (agent/remote/remote-cluster.ts). Written at start when absent or different, and written back,
 * counted and logged, whenever someone else edits or deletes it, as Cilium's clustermesh-apiserver
 * does.
 */
import type { Etcd3, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { errorMessage } from '../lib/errors.js';
import { clusterConfigKey } from '../lib/kvstore/keys.js';

export type ClusterConfigRepair = { write: false } | { write: true; reason: 'deleted' | 'edited' };

/** What to do about the key's current value (pure): nothing when it is ours, else write it back. */
export function clusterConfigRepair(current: string | null, wanted: string): ClusterConfigRepair {
  if (current === wanted) return { write: false };
  return { write: true, reason: current === null ? 'deleted' : 'edited' };
}

export interface ClusterConfigKeeperOptions {
  client: Etcd3;
  cluster: string;
  /** the encoded ClusterConfig */
  value: string;
  logger: Logger;
  /** a write back after start, by why */
  onRestored: (reason: 'deleted' | 'edited') => void;
  /** a failed read or write (the next event or reconnect tries again) */
  onError: (err: unknown) => void;
}

export class ClusterConfigKeeper {
  private readonly key: string;
  private watcher: Watcher | null = null;
  private checking: Promise<void> | null = null;
  private recheck = false;
  private stopped = false;

  constructor(private readonly o: ClusterConfigKeeperOptions) {
    this.key = clusterConfigKey(o.cluster);
  }

  /** Writes the key when absent or different (a restart rewrites nothing); throws on etcd errors. */
  async writeInitial(): Promise<void> {
    const current = await this.o.client.get(this.key).string();
    if (clusterConfigRepair(current, this.o.value).write) await this.o.client.put(this.key).value(this.o.value).exec();
  }

  /**
   * Watches the key from now on. Every event (and every reconnect of the watch, which may have
   * missed some) reads the key again and writes it back if it is not ours.
   */
  async watch(): Promise<void> {
    const watcher = await this.o.client.watch().key(this.key).create();
    if (this.stopped) {
      await watcher.cancel();
      return;
    }
    this.watcher = watcher;
    const check = (): void => this.check();
    watcher.on('put', check);
    watcher.on('delete', check);
    watcher.on('connected', check);
    watcher.on('error', (err: Error) => this.o.onError(err));
    // a change between writeInitial() and the watch's start
    this.check();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.watcher?.cancel().catch(() => undefined);
    await this.checking;
  }

  /** One read-and-repair at a time; events during one make one more. */
  private check(): void {
    if (this.stopped) return;
    if (this.checking) {
      this.recheck = true;
      return;
    }
    this.checking = this.repair().finally(() => {
      this.checking = null;
      if (this.recheck) {
        this.recheck = false;
        this.check();
      }
    });
  }

  private async repair(): Promise<void> {
    try {
      const current = await this.o.client.get(this.key).string();
      const repair = clusterConfigRepair(current, this.o.value);
      if (!repair.write || this.stopped) return;
      await this.o.client.put(this.key).value(this.o.value).exec();
      this.o.onRestored(repair.reason);
      this.o.logger.warn({ key: this.key, was: current }, `cluster config ${repair.reason} by someone else: written back`);
    } catch (err) {
      this.o.onError(err);
      this.o.logger.warn(`cluster config check failed (tried again on the next change or reconnect): ${errorMessage(err)}`);
    }
  }
}
