/**
 * Services → `cilium/state/services/v1/<cluster>/<ns>/<name>`. Keyed by Service; EndpointSlices,
 * the Namespace and a ServiceExport only requeue the Service they belong to. Slices are indexed by
 * Service so one reconcile reads only its own slices.
 */
import type { V1EndpointSlice, V1Namespace } from '@kubernetes/client-node';
import { encodeClusterService } from '../../lib/kvstore/codecs.js';
import { serviceKey } from '../../lib/kvstore/keys.js';
import type { SyncStore } from '../../lib/kvstore/sync-store.js';
import { SERVICE_NAME_LABEL, serviceToClusterService } from '../convert/index.js';
import type { ClusterInformers } from '../informers.js';
import type { WorkQueue } from '../workqueue.js';
import { objectKey, reportRejections, splitKey, type ReconcileContext } from './common.js';

export interface ServiceReconcilerOptions extends ReconcileContext {
  informers: Pick<ClusterInformers, 'services' | 'endpointSlices' | 'namespaces' | 'serviceExports'>;
  store: SyncStore;
  globalNamespacesByDefault: boolean;
}

export class ServiceReconciler {
  /** service key → slice name → slice */
  private readonly slicesByService = new Map<string, Map<string, V1EndpointSlice>>();
  /** slice key → the service key it was indexed under (its label may change) */
  private readonly serviceOfSlice = new Map<string, string>();
  private readonly published = new Set<string>();

  constructor(private readonly opts: ServiceReconcilerOptions) {}

  /** Routes every event that can change a Service's record to that Service's key. */
  watch(queue: WorkQueue): void {
    const { services, endpointSlices, namespaces, serviceExports } = this.opts.informers;
    const enqueue = (obj: { metadata?: { namespace?: string; name?: string } }) => queue.add(objectKey(obj));
    services.on({ upsert: enqueue, delete: enqueue });
    serviceExports.on({ upsert: enqueue, delete: enqueue });
    endpointSlices.on({
      upsert: (slice) => this.indexSlice(slice).forEach((key) => queue.add(key)),
      delete: (slice) => this.unindexSlice(slice).forEach((key) => queue.add(key)),
    });
    const requeueNamespace = (ns: V1Namespace) =>
      services.list(ns.metadata?.name).forEach((svc) => queue.add(objectKey(svc)));
    namespaces.on({ upsert: requeueNamespace, delete: requeueNamespace });
  }

  get publishedCount(): number {
    return this.published.size;
  }

  reconcile(key: string): void {
    const { namespace, name } = splitKey(key);
    const { informers, cluster, store } = this.opts;
    const etcdKey = serviceKey(cluster.name, namespace, name);
    const svc = informers.services.get(name, namespace);
    const conversion = svc
      ? serviceToClusterService(cluster, svc, [...(this.slicesByService.get(key)?.values() ?? [])], {
          namespaceAnnotations: informers.namespaces.get(namespace)?.metadata?.annotations,
          hasServiceExport: informers.serviceExports.get(name, namespace) !== undefined,
          globalNamespacesByDefault: this.opts.globalNamespacesByDefault,
        })
      : null;
    if (conversion) {
      reportRejections(this.opts, conversion.rejections);
      for (const warning of conversion.warnings) this.opts.logger.info({ service: key }, warning);
    }
    if (conversion?.service) {
      store.upsert(etcdKey, encodeClusterService(conversion.service));
      this.published.add(key);
    } else {
      // also when never published in this run: a previous run may have (the store skips an absent key)
      this.published.delete(key);
      store.delete(etcdKey);
    }
  }

  /** Returns the service keys whose backends may have changed. */
  private indexSlice(slice: V1EndpointSlice): string[] {
    const sliceKey = objectKey(slice);
    const owner = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
    const affected = this.unindexSlice(slice);
    if (owner) {
      const serviceKeyOfSlice = `${slice.metadata?.namespace}/${owner}`;
      const slices = this.slicesByService.get(serviceKeyOfSlice) ?? new Map<string, V1EndpointSlice>();
      slices.set(slice.metadata?.name ?? '', slice);
      this.slicesByService.set(serviceKeyOfSlice, slices);
      this.serviceOfSlice.set(sliceKey, serviceKeyOfSlice);
      affected.push(serviceKeyOfSlice);
    }
    return [...new Set(affected)];
  }

  private unindexSlice(slice: V1EndpointSlice): string[] {
    const sliceKey = objectKey(slice);
    const previous = this.serviceOfSlice.get(sliceKey);
    if (previous === undefined) return [];
    this.serviceOfSlice.delete(sliceKey);
    const slices = this.slicesByService.get(previous);
    slices?.delete(slice.metadata?.name ?? '');
    if (slices?.size === 0) this.slicesByService.delete(previous);
    return [previous];
  }
}
