/**
 * Address ownership applied to the peers' views (the decision: lib/kvstore/ownership.ts), for both
 * readers of peers: every view the agent's loop reads passes through here (agent/remote/
 * remote-clusters.ts), so a refused backend, node or ipcache entry never reaches the merge, the
 * health checker, the routes or the maps; and so does every record the kvstoremesh writes into
 * the local cache (clustermesh-apiserver/kvstoremesh/kvstoremesh.ts). The decision is taken again
 * when any peer's records or the local addresses change (a backend published before its node
 * record is admitted once the node arrives; one whose node record goes is withdrawn). Each refusal
 * is logged and counted once, when it first appears; it is counted again only if it goes away and
 * comes back.
 */
import type { Counter } from 'prom-client';
import type { Logger } from '../log.js';
import {
  admitPeerRecords,
  type Admission,
  type LocalAddresses,
  type OwnershipRefusal,
  type PeerRecords,
} from './ownership.js';
import type { StateKind } from './state-kinds.js';

/** Refusals logged one by one per decision; the rest are summed up in one line. */
const LOGGED_PER_DECISION = 20;

const STATE_KIND: Record<OwnershipRefusal['kind'], StateKind> = { node: 'nodes', service: 'services', ipcache: 'ipcache' };

export interface OwnershipGateOptions {
  log: Logger;
  /** the daemon's rejected-records counter, by cluster, kind and reason */
  rejected: Counter<'cluster' | 'kind' | 'reason'>;
  /** its name, for the log line that sums up refusals not logged one by one */
  rejectedMetric: string;
}

const refusalKey = (r: OwnershipRefusal): string => `${r.cluster}\u0000${r.kind}\u0000${r.record}\u0000${r.address}\u0000${r.reason}`;

/** `V`: a peer's view as the daemon holds it; what it carries besides the records passes through. */
export class OwnershipGate<V extends PeerRecords> {
  private last: { raw: readonly V[]; local: LocalAddresses; admitted: V[] } | null = null;
  private admission: Admission | undefined;
  private refused = new Set<string>();
  /** peer → refusals counted so far */
  private readonly counted = new Map<string, number>();

  constructor(private readonly opts: OwnershipGateOptions) {}

  /**
   * The views with only what each peer owns. `local` null (the local cluster's addresses are not
   * known yet): nothing of any peer is admitted, and nothing is counted.
   */
  admit(raw: readonly V[], local: LocalAddresses | null): V[] {
    if (local === null) return raw.map((view) => ({ ...view, services: [], nodes: [], ipcache: [] }));
    const last = this.last;
    if (last && last.local === local && last.raw.length === raw.length && last.raw.every((view, i) => view === raw[i])) return last.admitted;
    this.admission = admitPeerRecords(local, raw, this.admission);
    const admitted = this.admission.peers.map((records, i): V => ({
      ...raw[i],
      nodes: [...records.nodes],
      services: [...records.services],
      ipcache: [...records.ipcache],
    }));
    this.count(this.admission.refusals);
    this.last = { raw, local, admitted };
    return admitted;
  }

  /** Refusals counted for `peer` since the start (the status API adds them to its rejected count). */
  rejected(peer: string): number {
    return this.counted.get(peer) ?? 0;
  }

  private count(refusals: readonly OwnershipRefusal[]): void {
    const now = new Set<string>();
    let logged = 0;
    const unlogged = new Map<string, number>();
    for (const refusal of refusals) {
      const key = refusalKey(refusal);
      now.add(key);
      if (this.refused.has(key)) continue;
      const kind = STATE_KIND[refusal.kind];
      this.opts.rejected.inc({ cluster: refusal.cluster, kind, reason: refusal.reason });
      this.counted.set(refusal.cluster, this.rejected(refusal.cluster) + 1);
      if (logged++ < LOGGED_PER_DECISION) {
        this.opts.log.warn({ kind, reason: refusal.reason }, `refused from ${refusal.cluster}: ${refusal.why}`);
      } else {
        unlogged.set(refusal.cluster, (unlogged.get(refusal.cluster) ?? 0) + 1);
      }
    }
    for (const [cluster, n] of unlogged) this.opts.log.warn(`refused ${n} more records of ${cluster} (counted in ${this.opts.rejectedMetric})`);
    this.refused = now;
  }
}
