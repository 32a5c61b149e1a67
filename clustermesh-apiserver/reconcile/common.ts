/** What the reconcilers share: object keys and the reporting of rejected input. */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ClusterRef, Rejection } from '../convert/index.js';
import type { DaemonMetrics } from '../metrics.js';

/** `namespace/name`, or `name` for cluster-scoped objects: the work-queue key of an object. */
export function objectKey(obj: KubernetesObject): string {
  const name = obj.metadata?.name ?? '';
  return obj.metadata?.namespace ? `${obj.metadata.namespace}/${name}` : name;
}

export function splitKey(key: string): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

export interface ReconcileContext {
  cluster: ClusterRef;
  logger: Logger;
  metrics: Pick<DaemonMetrics, 'errors' | 'rejections'>;
}

/** A rejected object is skipped, logged and counted; it never stops the rest from syncing. */
export function reportRejections(ctx: ReconcileContext, rejections: readonly Rejection[]): void {
  for (const rejection of rejections) {
    ctx.metrics.rejections.inc({ kind: rejection.kind });
    ctx.logger.warn(
      { kind: rejection.kind, object: rejection.object },
      `${rejection.kind} ${rejection.object} ${rejection.reason}`,
    );
  }
}
