/**
 * A Kubernetes object (or part of one) that could not be converted. Conversions return these
 * beside their result instead of throwing, so one bad object is logged and counted by the daemon
 * while everything else still syncs.
 */
export type ObjectKind = 'Service' | 'EndpointSlice' | 'Node' | 'Pod';

export interface Rejection {
  kind: ObjectKind;
  /** `namespace/name`, or `name` for cluster-scoped objects */
  object: string;
  /** one line: what is wrong, with the offending value */
  reason: string;
}

export interface ObjectMetaLike {
  metadata?: { namespace?: string; name?: string };
}

export function objectName(obj: ObjectMetaLike): string {
  const name = obj.metadata?.name ?? '<unnamed>';
  return obj.metadata?.namespace ? `${obj.metadata.namespace}/${name}` : name;
}

export function reject(kind: ObjectKind, obj: ObjectMetaLike, reason: string): Rejection {
  return { kind, object: objectName(obj), reason };
}
