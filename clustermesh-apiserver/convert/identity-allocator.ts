/**
 * Numeric security identities, one per distinct label string, scoped to this cluster:
 * `clusterID << 16 | local` (24 bits, so identities of different clusters never collide).
 *
 * Local numbers start at 256: Cilium keeps 1..255 for reserved and well-known identities, and
 * 256..65535 is a subset of the range Cilium itself allocates from for a non-zero cluster ID, so a
 * Cilium peer accepts every identity we hand out. Pure state: the daemon writes and deletes the
 * kvstore keys that `allocate`/`release`/`releaseUnused` report.
 */

import { parseKeyOfKind } from '../../lib/kvstore/keys.js';

export const CLUSTER_ID_SHIFT = 16;
export const MIN_LOCAL_IDENTITY = 256;
export const MAX_LOCAL_IDENTITY = 0xffff;

export class IdentityExhaustedError extends Error {
  constructor(clusterId: number) {
    super(
      `identity space of cluster ${clusterId} is exhausted: all ${MAX_LOCAL_IDENTITY - MIN_LOCAL_IDENTITY + 1} ` +
        `identities (${MIN_LOCAL_IDENTITY}..${MAX_LOCAL_IDENTITY}) are in use by distinct pod label sets; ` +
        'reduce label churn (e.g. per-pod unique labels) so fewer distinct label sets exist',
    );
    this.name = 'IdentityExhaustedError';
  }
}

export function identityRange(clusterId: number): { min: number; max: number } {
  const base = clusterId << CLUSTER_ID_SHIFT;
  return { min: base | MIN_LOCAL_IDENTITY, max: base | MAX_LOCAL_IDENTITY };
}

export interface Allocation {
  id: number;
  /** true when this call created the identity: the daemon must write its kvstore key */
  created: boolean;
}

interface Entry {
  id: number;
  refs: number;
}

export class IdentityAllocator {
  private readonly byLabels = new Map<string, Entry>();
  private readonly usedIds = new Set<number>();
  /** no id below this is free, so the smallest-free search starts here */
  private lowestMaybeFree: number;
  private readonly range: { min: number; max: number };

  /**
   * `existing` is what the kvstore held at start (see `parseExistingIdentities`): those label sets
   * keep their ids, unreferenced until a pod claims them again, so a restart renumbers nothing.
   */
  constructor(
    private readonly clusterId: number,
    existing: ReadonlyMap<string, number> = new Map(),
  ) {
    this.range = identityRange(clusterId);
    this.lowestMaybeFree = this.range.min;
    for (const [labels, id] of existing) {
      if (id < this.range.min || id > this.range.max || this.usedIds.has(id)) {
        throw new Error(
          `restored identity ${id} for ${JSON.stringify(labels)} is outside cluster ${clusterId}'s range or duplicated`,
        );
      }
      this.byLabels.set(labels, { id, refs: 0 });
      this.usedIds.add(id);
    }
  }

  /** Takes a reference on the identity of `labels`, creating it with the smallest free id if needed. */
  allocate(labels: string): Allocation {
    const entry = this.byLabels.get(labels);
    if (entry) {
      entry.refs += 1;
      return { id: entry.id, created: false };
    }
    const id = this.smallestFreeId();
    this.byLabels.set(labels, { id, refs: 1 });
    this.usedIds.add(id);
    return { id, created: true };
  }

  /**
   * Drops one reference. Returns the id when that was the last one (the daemon deletes its key and
   * the id becomes free), otherwise `null`. Releasing unknown labels is a caller bug.
   */
  release(labels: string): number | null {
    const entry = this.byLabels.get(labels);
    if (!entry || entry.refs === 0)
      throw new Error(`release of identity labels ${JSON.stringify(labels)} that hold no reference`);
    entry.refs -= 1;
    return entry.refs === 0 ? this.free(labels, entry) : null;
  }

  /**
   * Frees every restored identity no pod has claimed; call once the initial pod listing has been
   * allocated. Returns the freed ids so the daemon deletes their keys.
   */
  releaseUnused(): number[] {
    const freed: number[] = [];
    for (const [labels, entry] of this.byLabels) {
      if (entry.refs === 0) freed.push(this.free(labels, entry));
    }
    return freed;
  }

  lookup(labels: string): number | undefined {
    return this.byLabels.get(labels)?.id;
  }

  get size(): number {
    return this.byLabels.size;
  }

  private free(labels: string, entry: Entry): number {
    this.byLabels.delete(labels);
    this.usedIds.delete(entry.id);
    this.lowestMaybeFree = Math.min(this.lowestMaybeFree, entry.id);
    return entry.id;
  }

  private smallestFreeId(): number {
    for (let id = this.lowestMaybeFree; id <= this.range.max; id++) {
      if (!this.usedIds.has(id)) {
        this.lowestMaybeFree = id + 1;
        return id;
      }
    }
    this.lowestMaybeFree = this.range.max + 1;
    throw new IdentityExhaustedError(this.clusterId);
  }
}

export interface ExistingIdentities {
  /** label string → id, ready for the `IdentityAllocator` constructor */
  byLabels: Map<string, number>;
  /** kvstore keys that cannot be kept (the daemon deletes them), with why */
  discarded: Array<{ key: string; reason: string }>;
}

const LABEL_LIST = /^(?:[^:;]+:[^=;]+=[^;]*;)+$/;

/**
 * Restores identities from the kvstore pairs under `cilium/state/identities/v1/id/`. Keeps ids in
 * this cluster's range whose value is a label list; when two ids carry the same labels (a crash
 * between two writes) the smaller one wins.
 */
export function parseExistingIdentities(
  clusterId: number,
  pairs: Iterable<{ key: string; value: string }>,
): ExistingIdentities {
  const { min, max } = identityRange(clusterId);
  const byLabels = new Map<string, number>();
  const discarded: ExistingIdentities['discarded'] = [];
  const parsed = [...pairs].map((pair) => ({ ...pair, id: parseKeyOfKind('identity', pair.key)?.id }));
  parsed.sort((a, b) => (a.id ?? Infinity) - (b.id ?? Infinity) || (a.key < b.key ? -1 : 1));
  for (const { key, value, id } of parsed) {
    if (id === undefined) {
      discarded.push({ key, reason: 'is not an identity key (cilium/state/identities/v1/id/<id>)' });
    } else if (id < min || id > max) {
      discarded.push({
        key,
        reason: `identity ${id} is outside cluster ${clusterId}'s range ${min}..${max}`,
      });
    } else if (!LABEL_LIST.test(value)) {
      discarded.push({
        key,
        reason: `value ${JSON.stringify(value)} is not a label list ("source:key=value;" …)`,
      });
    } else if (byLabels.has(value)) {
      discarded.push({ key, reason: `its labels are already held by identity ${byLabels.get(value)}` });
    } else {
      byLabels.set(value, id);
    }
  }
  return { byLabels, discarded };
}
