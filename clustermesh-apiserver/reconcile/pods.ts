/**
 * Pods → identities (`cilium/state/identities/v1/id/<id>`, one per distinct label set, reference
 * counted by pods) and ipcache entries (`cilium/state/ip/v1/default/<ip>`, pod IP → identity).
 * Keyed by Pod; a Namespace change requeues its pods, since namespace labels are identity labels
 * and its global annotation decides whether its pods are exported at all.
 */
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import { encodeIPCacheEntry, ipcachePrefixOf } from '../../lib/kvstore/codecs.js';
import { identityKey, ipcacheKey } from '../../lib/kvstore/keys.js';
import type { SyncStore } from '../../lib/kvstore/sync-store.js';
import type { IPCacheEntry } from '../../lib/kvstore/types.js';
import { labelsOfPod, podToIPCacheEntries, type IdentityAllocator } from '../convert/index.js';
import type { ClusterInformers } from '../informers.js';
import type { WorkQueue } from '../workqueue.js';
import { objectKey, reportRejections, splitKey, type ReconcileContext } from './common.js';

export interface PodReconcilerOptions extends ReconcileContext {
  informers: Pick<ClusterInformers, 'pods' | 'namespaces'>;
  identities: SyncStore;
  ipcache: SyncStore;
  allocator: IdentityAllocator;
  /** the `--global-namespaces-default` flag: are pods of unannotated namespaces exported */
  globalNamespacesByDefault: boolean;
}

interface PublishedPod {
  labels: string;
  id: number;
  /** ipcache key segments written for this pod */
  prefixes: string[];
}

export class PodReconciler {
  private readonly pods = new Map<string, PublishedPod>();
  /** ipcache prefix → the pod key that wrote it: a recycled IP belongs to its newest pod */
  private readonly ipOwners = new Map<string, string>();
  /** identities upserted in this run (restored ones too: the store must see them as wanted) */
  private readonly announced = new Set<number>();

  constructor(private readonly opts: PodReconcilerOptions) {}

  watch(queue: WorkQueue): void {
    const { pods, namespaces } = this.opts.informers;
    const enqueue = (pod: V1Pod) => queue.add(objectKey(pod));
    pods.on({ upsert: enqueue, delete: enqueue });
    const requeueNamespace = (ns: V1Namespace) => pods.list(ns.metadata?.name).forEach(enqueue);
    namespaces.on({ upsert: requeueNamespace, delete: requeueNamespace });
  }

  get identityCount(): number {
    return this.announced.size;
  }

  get ipcacheCount(): number {
    return this.ipOwners.size;
  }

  /** Restored identities that no pod claimed in the initial listing are freed. */
  releaseUnclaimedIdentities(): void {
    for (const id of this.opts.allocator.releaseUnused()) this.deleteIdentity(id);
  }

  /** Throws IdentityExhaustedError when no identity is left: the queue retries later. */
  reconcile(key: string): void {
    const { namespace, name } = splitKey(key);
    const pod = this.opts.informers.pods.get(name, namespace);
    const desired = pod ? this.desiredOf(pod) : null;
    const previous = this.pods.get(key);
    if (!desired) return this.forget(key, previous);
    const id = previous?.labels === desired.labels ? previous.id : this.claimIdentity(desired.labels);
    if (previous && previous.labels !== desired.labels) this.releaseIdentity(previous.labels);
    const entries = desired.entries.map((entry) => ({ ...entry, ID: id }));
    const prefixes = entries.map(ipcachePrefixOf);
    for (const prefix of previous?.prefixes ?? []) if (!prefixes.includes(prefix)) this.dropIP(prefix, key);
    for (const entry of entries) {
      const prefix = ipcachePrefixOf(entry);
      this.ipOwners.set(prefix, key);
      this.opts.ipcache.upsert(ipcacheKey(prefix), encodeIPCacheEntry(entry));
    }
    this.pods.set(key, { labels: desired.labels, id, prefixes });
  }

  private desiredOf(pod: V1Pod): { labels: string; entries: IPCacheEntry[] } | null {
    const namespace = this.opts.informers.namespaces.get(pod.metadata?.namespace ?? '');
    // Identity 0 is a placeholder: the pod claims its identity only once it is known to need one.
    const conversion = podToIPCacheEntries(pod, 0, {
      namespaceAnnotations: namespace?.metadata?.annotations,
      globalNamespacesByDefault: this.opts.globalNamespacesByDefault,
    });
    reportRejections(this.opts, conversion.rejections);
    if (conversion.entries.length === 0) return null;
    return { labels: labelsOfPod(pod, this.opts.cluster, namespace), entries: conversion.entries };
  }

  private forget(key: string, previous: PublishedPod | undefined): void {
    if (!previous) return;
    previous.prefixes.forEach((prefix) => this.dropIP(prefix, key));
    this.releaseIdentity(previous.labels);
    this.pods.delete(key);
  }

  private claimIdentity(labels: string): number {
    const { id } = this.opts.allocator.allocate(labels);
    if (!this.announced.has(id)) {
      this.opts.identities.upsert(identityKey(id), labels);
      this.announced.add(id);
    }
    return id;
  }

  private releaseIdentity(labels: string): void {
    const freed = this.opts.allocator.release(labels);
    if (freed !== null) this.deleteIdentity(freed);
  }

  private deleteIdentity(id: number): void {
    this.announced.delete(id);
    this.opts.identities.delete(identityKey(id));
  }

  private dropIP(prefix: string, key: string): void {
    if (this.ipOwners.get(prefix) !== key) return;
    this.ipOwners.delete(prefix);
    this.opts.ipcache.delete(ipcacheKey(prefix));
  }
}
