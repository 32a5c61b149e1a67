/**
 * The import-side security boundary (DESIGN §3): a record read from a remote cluster's etcd is
 * accepted only if it parses strictly and claims nothing about any cluster but the one we are
 * connected to. Pure: bytes and context in, a typed value or one reason out.
 */
import {
  CLUSTER_LABEL,
  DEFAULT_MAX_RECORD_BYTES,
  decodeClusterConfig,
  decodeClusterService,
  decodeIPCacheEntry,
  decodeIdentityLabels,
  decodeNode,
  decodeTimestamp,
  identityClusterID,
  ipcachePrefixOf,
  type Decoded,
  type IdentityLabels,
  type RecordBytes,
} from './codecs.js';
import { parseKeyOfKind, type ParsedKey, type RecordKind } from './keys.js';
import type { ClusterConfig, ClusterService, IPCacheEntry, NodeRecord } from './types.js';

export interface RecordByKind {
  config: ClusterConfig;
  service: ClusterService;
  node: NodeRecord;
  identity: IdentityLabels;
  ipcache: IPCacheEntry;
  synced: string;
  heartbeat: string;
}

export interface RemoteContext {
  /** The name of the cluster whose etcd we read. */
  cluster: string;
  /** Its ID from its cluster config; required for every kind but `config`, `synced`, `heartbeat`. */
  clusterID?: number;
  maxBytes?: number;
}

type Check<K extends RecordKind> = (
  key: Extract<ParsedKey, { kind: K }>,
  value: RecordByKind[K],
  ctx: RemoteContext,
) => string | null;

export function validateRemoteRecord<K extends RecordKind>(
  kind: K,
  key: string,
  bytes: RecordBytes,
  ctx: RemoteContext,
): Decoded<RecordByKind[K]> {
  const parsedKey = parseKeyOfKind(kind, key);
  if (!parsedKey) return reject(key, `is not a ${kind} key`);
  const keyCluster = 'cluster' in parsedKey ? parsedKey.cluster : ctx.cluster;
  if (keyCluster !== ctx.cluster) {
    return reject(
      key,
      `key names cluster "${keyCluster}" but this connection is to cluster "${ctx.cluster}"`,
    );
  }
  if (NEEDS_CLUSTER_ID.has(kind) && ctx.clusterID === undefined) {
    return reject(key, `cluster ID of "${ctx.cluster}" is not known yet (its cluster config was not read)`);
  }
  const decoded = DECODERS[kind](key, bytes, {
    maxBytes: ctx.maxBytes ?? DEFAULT_MAX_RECORD_BYTES,
  }) as Decoded<RecordByKind[K]>;
  if (!decoded.ok) return decoded;
  const problem = (CHECKS[kind] as Check<K>)(parsedKey, decoded.value, ctx);
  return problem ? reject(key, problem) : decoded;
}

const NEEDS_CLUSTER_ID: ReadonlySet<RecordKind> = new Set(['service', 'node', 'identity', 'ipcache']);

const DECODERS: {
  [K in RecordKind]: (
    key: string,
    bytes: RecordBytes,
    opts: { maxBytes: number },
  ) => Decoded<RecordByKind[K]>;
} = {
  config: decodeClusterConfig,
  service: decodeClusterService,
  node: decodeNode,
  identity: decodeIdentityLabels,
  ipcache: decodeIPCacheEntry,
  synced: (key, bytes) => decodeTimestamp(key, bytes),
  heartbeat: (key, bytes) => decodeTimestamp(key, bytes),
};

const CHECKS: { [K in RecordKind]: Check<K> } = {
  config: (_key, value, ctx) =>
    ctx.clusterID !== undefined && value.id !== ctx.clusterID
      ? `cluster config id ${value.id} differs from the configured cluster ID ${ctx.clusterID}`
      : null,
  service: (key, svc, ctx) =>
    mismatch('cluster', svc.cluster, key.cluster) ??
    mismatch('namespace', svc.namespace, key.namespace) ??
    mismatch('name', svc.name, key.name) ??
    clusterIDMismatch('clusterID', svc.clusterID, ctx),
  node: (key, node, ctx) =>
    mismatch('Cluster', node.Cluster, key.cluster) ??
    mismatch('Name', node.Name, key.name) ??
    clusterIDMismatch('ClusterID', node.ClusterID, ctx),
  identity: (key, labels, ctx) => {
    const cluster = labels[CLUSTER_LABEL];
    if (cluster !== ctx.cluster)
      return `label ${CLUSTER_LABEL} is ${JSON.stringify(cluster ?? null)}, not "${ctx.cluster}"`;
    return clusterIDMismatch('identity cluster bits', identityClusterID(key.id), ctx);
  },
  ipcache: (key, entry, ctx) =>
    mismatch('IP/Mask', ipcachePrefixOf(entry), key.prefix) ??
    clusterIDMismatch('ID cluster bits', identityClusterID(entry.ID), ctx),
  synced: () => null,
  heartbeat: () => null,
};

function mismatch(field: string, value: string, fromKey: string): string | null {
  return value === fromKey ? null : `${field}: value says "${value}" but the key says "${fromKey}"`;
}

function clusterIDMismatch(field: string, value: number, ctx: RemoteContext): string | null {
  return value === ctx.clusterID
    ? null
    : `${field}: ${value} is not the cluster ID ${ctx.clusterID} of "${ctx.cluster}"`;
}

function reject<T>(key: string, why: string): Decoded<T> {
  return { ok: false, reason: `${key}: ${why}` };
}

/**
 * Pure: a bounded label for a reason validateRemoteRecord gave (the reason itself names keys and
 * values, far too many for a metric label); the agent and the kvstoremesh count by it. Ordered:
 * the first match wins.
 */
const REJECTION_CLASSES: ReadonlyArray<[RegExp, string]> = [
  [/exceeds the \d+-byte limit/, 'too-large'],
  [/is not valid JSON/, 'malformed'],
  [/key names cluster|label k8s:io\.cilium\.k8s\.policy\.cluster is/, 'foreign-cluster'],
  [/is not the cluster ID|cluster ID of .* is not known/, 'cluster-id'],
  [/value says .* but the key says/, 'key-mismatch'],
  [/is not a \w+ key/, 'bad-key'],
  [/IP address|IPv[46] address|network mask|mask does not match/, 'invalid-address'],
];

export function rejectionClass(key: string, reason: string): string {
  // The key is the peer's text: leave it out, so it cannot pick its own class.
  const why = reason.startsWith(`${key}: `) ? reason.slice(key.length + 2) : reason;
  return REJECTION_CLASSES.find(([pattern]) => pattern.test(why))?.[1] ?? 'invalid-field';
}
