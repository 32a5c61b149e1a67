/**
 * The link to a peer's etcd, shared by the agent (agent/remote/remote-cluster.ts) and the
 * kvstoremesh (clustermesh-apiserver/kvstoremesh/peer-mirror.ts): a watch on the peer's
 * cluster-config key is its pulse, and it sees the peer's config change.
 *
 * etcd3 resumes a broken watch at the revision it last saw. When the peer's etcd was replaced by
 * an empty one (its clustermesh-apiserver pod recreated with a fresh emptyDir), that revision lies
 * ahead of the new etcd's, and the resumed watch sees nothing — not even the config the new etcd
 * was given — until the new etcd's revision catches up, which may take hours. So after every break
 * the link drops etcd3's watcher, reads the config again (with its own backoff, until the read
 * succeeds) and watches from the revision of that read: the etcd that answers now.
 */
import type { Etcd3, Watcher } from 'etcd3';
import { encodeClusterConfig } from '../kvstore/codecs.js';
import { clusterConfigKey } from '../kvstore/keys.js';
import { createStopController, retryUntilAborted, type BackoffOptions } from '../kvstore/retry.js';
import type { ClusterConfig } from '../kvstore/types.js';
import { validateRemoteRecord } from '../kvstore/validate.js';

export interface PeerLinkHandlers {
  /** The watch is established (at start and after every break). */
  up(): void;
  /** The watch broke (reported once per outage). */
  lost(err: Error): void;
  /** The peer's config differs from the last one known: a new valid config, or null when deleted. */
  changed(config: ClusterConfig | null): void;
  /** The peer wrote a config that does not validate (kept: the last valid one stays in force). */
  invalid(reason: string): void;
}

export interface PeerLinkOptions {
  client: Etcd3;
  peer: string;
  /** the config the connection was made with, and the revision it was read at */
  config: ClusterConfig;
  revision: string;
  handlers: PeerLinkHandlers;
  backoff?: BackoffOptions;
}

/** Canonical text of a config, to compare two (the peer's own JSON may differ in key order). */
const configText = (config: ClusterConfig | null): string | null =>
  config === null ? null : encodeClusterConfig(config);

export class PeerLink {
  private watcher: Watcher | null = null;
  private readonly stop = createStopController();
  private known: string | null;
  private readonly key: string;

  constructor(private readonly opts: PeerLinkOptions) {
    this.key = clusterConfigKey(opts.peer);
    this.known = configText(opts.config);
  }

  start(): void {
    this.watchFrom(this.opts.revision);
  }

  async close(): Promise<void> {
    this.stop.abort(new Error(`link to ${this.opts.peer} closed`));
    const watcher = this.watcher;
    this.watcher = null;
    await watcher?.cancel().catch(() => undefined);
  }

  private watchFrom(revision: string): void {
    if (this.stop.signal.aborted) return;
    const watcher = this.opts.client
      .watch()
      .key(this.key)
      .startRevision(String(BigInt(revision) + 1n))
      .watcher();
    this.watcher = watcher;
    const current = () => this.watcher === watcher && !this.stop.signal.aborted;
    watcher.on('connected', () => current() && this.opts.handlers.up());
    watcher.on('disconnected', (err: Error) => current() && this.broken(watcher, err));
    watcher.on('error', (err: Error) => current() && this.broken(watcher, err));
    watcher.on('put', (kv) => current() && this.observed(kv.value));
    watcher.on('delete', () => current() && this.observed(null));
  }

  private broken(watcher: Watcher, err: Error): void {
    this.watcher = null;
    // Not awaited: on a broken stream etcd3 only forgets the watcher, so it is never resumed.
    void watcher.cancel().catch(() => undefined);
    this.opts.handlers.lost(err);
    void this.reestablish();
  }

  /** Reads the config until an etcd answers, reports a change, and watches from that read. */
  private async reestablish(): Promise<void> {
    let response;
    try {
      response = await retryUntilAborted(
        () => this.opts.client.get(this.key).exec(),
        this.stop.signal,
        () => undefined,
        this.opts.backoff,
      );
    } catch {
      return; // closed
    }
    this.observed(response.kvs[0]?.value ?? null);
    this.watchFrom(response.header.revision);
  }

  private observed(bytes: Buffer | null): void {
    if (this.stop.signal.aborted) return;
    let config: ClusterConfig | null = null;
    if (bytes !== null) {
      const decoded = validateRemoteRecord('config', this.key, bytes, { cluster: this.opts.peer });
      if (!decoded.ok) {
        this.opts.handlers.invalid(decoded.reason);
        return;
      }
      config = decoded.value;
    }
    const text = configText(config);
    if (text === this.known) return;
    this.known = text;
    this.opts.handlers.changed(config);
  }
}
