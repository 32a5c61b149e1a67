/** Nodes → `cilium/state/nodes/v1/<cluster>/<node>`. */
import { encodeNode } from '../../lib/kvstore/codecs.js';
import { nodeKey } from '../../lib/kvstore/keys.js';
import type { SyncStore } from '../../lib/kvstore/sync-store.js';
import { nodeToNodeRecord } from '../convert/index.js';
import type { ClusterInformers } from '../informers.js';
import type { WorkQueue } from '../workqueue.js';
import { objectKey, reportRejections, type ReconcileContext } from './common.js';

export interface NodeReconcilerOptions extends ReconcileContext {
  informers: Pick<ClusterInformers, 'nodes'>;
  store: SyncStore;
}

export class NodeReconciler {
  private readonly published = new Set<string>();

  constructor(private readonly opts: NodeReconcilerOptions) {}

  watch(queue: WorkQueue): void {
    const enqueue = (node: { metadata?: { name?: string } }) => queue.add(objectKey(node));
    this.opts.informers.nodes.on({ upsert: enqueue, delete: enqueue });
  }

  get publishedCount(): number {
    return this.published.size;
  }

  reconcile(name: string): void {
    const { cluster, store } = this.opts;
    const node = this.opts.informers.nodes.get(name);
    const conversion = node ? nodeToNodeRecord(cluster, node) : null;
    if (conversion) reportRejections(this.opts, conversion.rejections);
    if (conversion?.node) {
      store.upsert(nodeKey(cluster.name, name), encodeNode(conversion.node));
      this.published.add(name);
    } else {
      this.published.delete(name);
      store.delete(nodeKey(cluster.name, name));
    }
  }
}
