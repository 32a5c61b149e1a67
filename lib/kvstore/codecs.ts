/**
 * JSON codecs for every record of DESIGN §3. Encoders are deterministic (fixed field order,
 * map keys sorted) so that equal records give equal bytes and unchanged writes can be skipped.
 * Decoders validate strictly and return a precise reason: which key, which field, why.
 */
import { ipFamily, isIpAddress } from '../net/ip.js';
import type {
  ClusterConfig,
  ClusterService,
  IPCacheEntry,
  L4Protocol,
  NodeAddress,
  NodeRecord,
  PortConfiguration,
  PortMap,
  NamedPort,
} from './types.js';

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Larger values are refused before JSON.parse (a remote must not make us parse megabytes). */
export const DEFAULT_MAX_RECORD_BYTES = 512 * 1024;
export const MAX_CLUSTER_ID = 255;
export const MAX_CLUSTER_NAME_LENGTH = 32;
/** Cilium's default and the largest meaningful value: cluster IDs are 8 bits. */
export const MAX_CONNECTED_CLUSTERS = 255;
/** Numeric identities are 24 bits: clusterID << 16 | local. */
export const IDENTITY_CLUSTER_SHIFT = 16;
export const MAX_IDENTITY = 0xffffff;
export const CLUSTER_LABEL = 'k8s:io.cilium.k8s.policy.cluster';

const CLUSTER_NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const MAX_TEXT_VALUE_BYTES = 128;
const NODE_ADDRESS_TYPES: ReadonlySet<string> = new Set(['InternalIP', 'ExternalIP', 'CiliumInternalIP']);
const PROTOCOLS: ReadonlySet<string> = new Set(['TCP', 'UDP']);

/** Identity labels: `source:key` → value, e.g. `k8s:app` → `echo`. */
export type IdentityLabels = Record<string, string>;

export type CIDRValue = { IP: string; Mask: string };

// ---------------------------------------------------------------- names and numbers

export function clusterNameProblem(name: string): string | null {
  if (name.length === 0) return 'is empty';
  if (name.length > MAX_CLUSTER_NAME_LENGTH) return `is longer than ${MAX_CLUSTER_NAME_LENGTH} characters`;
  if (!CLUSTER_NAME_RE.test(name))
    return 'must be lowercase letters, digits and "-", starting and ending with a letter or digit';
  return null;
}

export function clusterIDProblem(id: unknown): string | null {
  return Number.isInteger(id) && (id as number) >= 1 && (id as number) <= MAX_CLUSTER_ID
    ? null
    : `must be an integer from 1 to ${MAX_CLUSTER_ID}`;
}

export const isDNSLabel = (s: string): boolean => s.length <= 63 && DNS_LABEL_RE.test(s);
export const isDNSSubdomain = (s: string): boolean => s.length <= 253 && s.split('.').every(isDNSLabel);

/** The cluster ID carried in a numeric identity's high bits. */
export const identityClusterID = (id: number): number => id >>> IDENTITY_CLUSTER_SHIFT;

// ---------------------------------------------------------------- field checks

/** A validation failure at a field path; turned into `<key>: <path>: <why>`. */
class FieldError extends Error {
  constructor(
    readonly path: string,
    readonly why: string,
  ) {
    super(`${path}: ${why}`);
  }
}

const fail = (path: string, why: string): never => {
  throw new FieldError(path, why);
};
const join = (path: string, field: string): string => (path ? `${path}.${field}` : field);
const index = (path: string, key: string): string => `${path}[${JSON.stringify(key)}]`;
const describe = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v);

function object(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    fail(path || 'value', `must be an object, got ${describe(v)}`);
  return v as Record<string, unknown>;
}

function field(obj: Record<string, unknown>, name: string, path: string): unknown {
  if (!(name in obj)) fail(join(path, name), 'is missing');
  return obj[name];
}

function str(v: unknown, path: string): string {
  if (typeof v !== 'string') fail(path, `must be a string, got ${describe(v)}`);
  return v as string;
}

function bool(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') fail(path, `must be true or false, got ${describe(v)}`);
  return v as boolean;
}

function integer(v: unknown, path: string, min: number, max: number): number {
  if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) {
    fail(path, `must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return v as number;
}

function ipAddress(v: unknown, path: string): string {
  const s = str(v, path);
  if (!isIpAddress(s)) fail(path, `${JSON.stringify(s)} is not an IP address`);
  return s;
}

function dnsLabel(v: unknown, path: string): string {
  const s = str(v, path);
  if (!isDNSLabel(s))
    fail(path, `${JSON.stringify(s)} is not a DNS label (lowercase alphanumerics and "-", at most 63)`);
  return s;
}

function dnsSubdomain(v: unknown, path: string): string {
  const s = str(v, path);
  if (!isDNSSubdomain(s)) fail(path, `${JSON.stringify(s)} is not a DNS name`);
  return s;
}

function clusterName(v: unknown, path: string): string {
  const s = str(v, path);
  const problem = clusterNameProblem(s);
  if (problem) fail(path, `cluster name ${JSON.stringify(s)} ${problem}`);
  return s;
}

function stringMap(v: unknown, path: string): Record<string, string> {
  const obj = object(v, path);
  return sortedMap(obj, {}, (value, key) => str(value, index(path, key)));
}

function portConfiguration(v: unknown, path: string): PortConfiguration {
  const obj = object(v, path);
  const protocol = str(field(obj, 'Protocol', path), join(path, 'Protocol'));
  if (!PROTOCOLS.has(protocol))
    fail(join(path, 'Protocol'), `must be TCP or UDP, got ${JSON.stringify(protocol)}`);
  return {
    Protocol: protocol as L4Protocol,
    Port: integer(field(obj, 'Port', path), join(path, 'Port'), 1, 65535),
  };
}

function portMap(v: unknown, path: string): PortMap {
  return sortedMap(object(v, path), {}, (ports, name) => {
    // Kubernetes allows one unnamed port: Cilium writes it under "".
    if (name !== '' && !isDNSLabel(name)) fail(index(path, name), 'port name is not a DNS label');
    return portConfiguration(ports, index(path, name));
  });
}

function namedPorts(v: unknown, path: string): NamedPort[] {
  const list: unknown[] = Array.isArray(v) ? v : fail(path, 'must be a list of {Name, Port, Protocol}');
  return list.map((item, i) => {
    const at = index(path, String(i));
    const name = str(field(object(item, at), 'Name', at), join(at, 'Name'));
    if (name !== '' && !isDNSLabel(name)) fail(join(at, 'Name'), 'port name is not a DNS label');
    return { Name: name, ...portConfiguration(item, at) };
  });
}

function addressPortMap(v: unknown, path: string): Record<string, PortMap> {
  return sortedMap(object(v, path), {}, (ports, address) => {
    if (!isIpAddress(address)) fail(index(path, address), 'is not an IP address');
    return portMap(ports, index(path, address));
  });
}

/** Go marshals net.IPMask as base64 of the mask bytes: 4 (IPv4) or 16 (IPv6) contiguous ones. */
export function maskPrefixLength(mask: string): number | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(mask)) return null;
  const bytes = Buffer.from(mask, 'base64');
  if (bytes.length !== 4 && bytes.length !== 16) return null;
  const bits = [...bytes].map((b) => b.toString(2).padStart(8, '0')).join('');
  if (!/^1*0*$/.test(bits)) return null;
  const firstZero = bits.indexOf('0');
  return firstZero === -1 ? bits.length : firstZero;
}

/** base64 mask of `prefixLength` bits for an address family (4 or 6): Go's net.CIDRMask. */
export function maskFromPrefixLength(prefixLength: number, family: 4 | 6): string {
  const size = family === 4 ? 4 : 16;
  const bytes = Buffer.alloc(size);
  for (let bit = 0; bit < prefixLength; bit++) bytes[bit >> 3]! |= 0x80 >> (bit & 7);
  return bytes.toString('base64');
}

function mask(v: unknown, path: string, address: string): string {
  const s = str(v, path);
  const length = maskPrefixLength(s);
  const family = ipFamily(address);
  if (length === null) fail(path, `${JSON.stringify(s)} is not a base64 network mask`);
  if (Buffer.from(s, 'base64').length !== (family === 4 ? 4 : 16))
    fail(path, `mask does not match the IPv${family} address`);
  return s;
}

function cidr(v: unknown, path: string): CIDRValue | null {
  if (v === null || v === undefined) return null;
  const obj = object(v, path);
  const address = ipAddress(field(obj, 'IP', path), join(path, 'IP'));
  return { IP: address, Mask: mask(field(obj, 'Mask', path), join(path, 'Mask'), address) };
}

function nodeAddresses(v: unknown, path: string): NodeAddress[] {
  if (!Array.isArray(v)) fail(path, `must be an array, got ${describe(v)}`);
  return (v as unknown[]).map((item, i) => {
    const at = `${path}[${i}]`;
    const obj = object(item, at);
    const type = str(field(obj, 'Type', at), join(at, 'Type'));
    if (!NODE_ADDRESS_TYPES.has(type)) fail(join(at, 'Type'), `unknown address type ${JSON.stringify(type)}`);
    return { Type: type as NodeAddress['Type'], IP: ipAddress(field(obj, 'IP', at), join(at, 'IP')) };
  });
}

/** `obj`'s entries converted, in key order, into `out` (empty). */
function sortedMap<T>(
  obj: Record<string, unknown>,
  out: Record<string, unknown>,
  convert: (value: unknown, key: string) => T,
): Record<string, T> {
  for (const key of Object.keys(obj).sort()) out[key] = convert(obj[key], key);
  return out as Record<string, T>;
}

// ---------------------------------------------------------------- decoding frame

export type RecordBytes = Uint8Array | string;

const byteLength = (bytes: RecordBytes): number =>
  typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.byteLength;
const asText = (bytes: RecordBytes): string =>
  typeof bytes === 'string'
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');

/** Size check, then parse, then `convert`; every failure names the key. */
function decodeWith<T>(
  key: string,
  bytes: RecordBytes,
  maxBytes: number,
  convert: (text: string) => T,
): Decoded<T> {
  const size = byteLength(bytes);
  if (size > maxBytes)
    return { ok: false, reason: `${key}: value of ${size} bytes exceeds the ${maxBytes}-byte limit` };
  try {
    return { ok: true, value: convert(asText(bytes)) };
  } catch (err) {
    if (err instanceof FieldError) return { ok: false, reason: `${key}: ${err.path}: ${err.why}` };
    return { ok: false, reason: `${key}: ${(err as Error).message}` };
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`value is not valid JSON (${(err as Error).message})`);
  }
}

export interface DecodeOptions {
  maxBytes?: number;
}

// ---------------------------------------------------------------- cluster config

export function encodeClusterConfig(config: ClusterConfig): string {
  return JSON.stringify({
    id: config.id,
    capabilities: {
      syncedCanaries: config.capabilities.syncedCanaries,
      maxConnectedClusters: config.capabilities.maxConnectedClusters,
      // omitted when false, as Cilium's omitempty does
      ...(config.capabilities.cached ? { cached: true } : {}),
    },
  });
}

export function decodeClusterConfig(
  key: string,
  bytes: RecordBytes,
  opts: DecodeOptions = {},
): Decoded<ClusterConfig> {
  return decodeWith(key, bytes, opts.maxBytes ?? DEFAULT_MAX_RECORD_BYTES, (text) => {
    const obj = object(parseJson(text), '');
    const id = integer(field(obj, 'id', ''), 'id', 1, MAX_CLUSTER_ID);
    // Cilium omits false/zero capabilities (omitempty); zero connected clusters means the default.
    const caps = obj.capabilities === undefined ? {} : object(obj.capabilities, 'capabilities');
    const synced =
      caps.syncedCanaries === undefined ? false : bool(caps.syncedCanaries, 'capabilities.syncedCanaries');
    const max =
      caps.maxConnectedClusters === undefined || caps.maxConnectedClusters === 0
        ? MAX_CONNECTED_CLUSTERS
        : integer(caps.maxConnectedClusters, 'capabilities.maxConnectedClusters', 1, MAX_CONNECTED_CLUSTERS);
    const cached = caps.cached === undefined ? false : bool(caps.cached, 'capabilities.cached');
    return {
      id,
      capabilities: { syncedCanaries: synced, maxConnectedClusters: max, ...(cached ? { cached } : {}) },
    };
  });
}

// ---------------------------------------------------------------- services

export function encodeClusterService(svc: ClusterService): string {
  // Keyed by addresses, new property names on nearly every record: V8 builds a hidden class per new
  // name of a plain object, a prototype-less one is a hash table from the start (bench/apiserver.ts
  // encodes 100k backends at once).
  const ports = (m: Record<string, PortMap>) =>
    sortedMap(m, Object.create(null) as Record<string, PortMap>, (pm) =>
      sortedMap(pm as Record<string, unknown>, {}, (p) => {
        const { Protocol, Port } = p as PortConfiguration;
        return { Protocol, Port };
      }),
    );
  return JSON.stringify({
    cluster: svc.cluster,
    namespace: svc.namespace,
    name: svc.name,
    frontends: ports(svc.frontends),
    backends: ports(svc.backends),
    labels: sortedMap(svc.labels, {}, (v) => v),
    selector: sortedMap(svc.selector, {}, (v) => v),
    includeExternal: svc.includeExternal,
    shared: svc.shared,
    clusterID: svc.clusterID,
  });
}

export function decodeClusterService(
  key: string,
  bytes: RecordBytes,
  opts: DecodeOptions = {},
): Decoded<ClusterService> {
  return decodeWith(key, bytes, opts.maxBytes ?? DEFAULT_MAX_RECORD_BYTES, (text) => {
    const obj = object(parseJson(text), '');
    const optionalMap = (name: string) => (obj[name] === undefined || obj[name] === null ? {} : obj[name]);
    return {
      cluster: clusterName(field(obj, 'cluster', ''), 'cluster'),
      namespace: dnsLabel(field(obj, 'namespace', ''), 'namespace'),
      name: dnsLabel(field(obj, 'name', ''), 'name'),
      frontends: addressPortMap(optionalMap('frontends'), 'frontends'),
      backends: addressPortMap(optionalMap('backends'), 'backends'),
      labels: stringMap(optionalMap('labels'), 'labels'),
      selector: stringMap(optionalMap('selector'), 'selector'),
      includeExternal: bool(field(obj, 'includeExternal', ''), 'includeExternal'),
      shared: bool(field(obj, 'shared', ''), 'shared'),
      clusterID: integer(field(obj, 'clusterID', ''), 'clusterID', 1, MAX_CLUSTER_ID),
    };
  });
}

// ---------------------------------------------------------------- nodes

export function encodeNode(node: NodeRecord): string {
  return JSON.stringify({
    Name: node.Name,
    Cluster: node.Cluster,
    IPAddresses: node.IPAddresses.map(({ Type, IP }) => ({ Type, IP })),
    IPv4AllocCIDR: node.IPv4AllocCIDR && { IP: node.IPv4AllocCIDR.IP, Mask: node.IPv4AllocCIDR.Mask },
    IPv6AllocCIDR: node.IPv6AllocCIDR && { IP: node.IPv6AllocCIDR.IP, Mask: node.IPv6AllocCIDR.Mask },
    ClusterID: node.ClusterID,
  });
}

export function decodeNode(key: string, bytes: RecordBytes, opts: DecodeOptions = {}): Decoded<NodeRecord> {
  return decodeWith(key, bytes, opts.maxBytes ?? DEFAULT_MAX_RECORD_BYTES, (text) => {
    const obj = object(parseJson(text), '');
    const v4 = cidr(obj.IPv4AllocCIDR, 'IPv4AllocCIDR');
    const v6 = cidr(obj.IPv6AllocCIDR, 'IPv6AllocCIDR');
    if (v4 && ipFamily(v4.IP) !== 4) fail('IPv4AllocCIDR.IP', 'is not an IPv4 address');
    if (v6 && ipFamily(v6.IP) !== 6) fail('IPv6AllocCIDR.IP', 'is not an IPv6 address');
    return {
      Name: dnsSubdomain(field(obj, 'Name', ''), 'Name'),
      Cluster: clusterName(field(obj, 'Cluster', ''), 'Cluster'),
      IPAddresses: nodeAddresses(field(obj, 'IPAddresses', ''), 'IPAddresses'),
      IPv4AllocCIDR: v4,
      IPv6AllocCIDR: v6,
      ClusterID: integer(field(obj, 'ClusterID', ''), 'ClusterID', 1, MAX_CLUSTER_ID),
    };
  });
}

// ---------------------------------------------------------------- identities

/** Cilium's sorted label string: `k8s:a=1;k8s:b=2;`. */
export function encodeIdentityLabels(labels: IdentityLabels): string {
  return Object.keys(labels)
    .sort()
    .map((name) => `${name}=${labels[name]};`)
    .join('');
}

export function decodeIdentityLabels(
  key: string,
  bytes: RecordBytes,
  opts: DecodeOptions = {},
): Decoded<IdentityLabels> {
  return decodeWith(key, bytes, opts.maxBytes ?? DEFAULT_MAX_RECORD_BYTES, (text) => {
    if (!text.endsWith(';')) fail('labels', 'must be "source:key=value;" entries, each ending with ";"');
    const labels: IdentityLabels = {};
    text
      .slice(0, -1)
      .split(';')
      .forEach((entry, i) => {
        const eq = entry.indexOf('=');
        const name = eq < 0 ? entry : entry.slice(0, eq);
        if (!/^[^:=;]+:[^=;]+$/.test(name))
          fail(`labels[${i}]`, `${JSON.stringify(entry)} is not "source:key=value"`);
        if (name in labels) fail(`labels[${i}]`, `label ${name} appears twice`);
        labels[name] = eq < 0 ? '' : entry.slice(eq + 1);
      });
    return labels;
  });
}

// ---------------------------------------------------------------- ipcache

export function encodeIPCacheEntry(entry: IPCacheEntry): string {
  return JSON.stringify({
    IP: entry.IP,
    Mask: entry.Mask,
    HostIP: entry.HostIP,
    ID: entry.ID,
    K8sNamespace: entry.K8sNamespace,
    K8sPodName: entry.K8sPodName,
    NamedPorts: entry.NamedPorts && entry.NamedPorts.map(({ Name, Port, Protocol }) => ({ Name, Port, Protocol })),
  });
}

/** The key segment of an entry: its address, or `address/len` when it has a mask. */
export function ipcachePrefixOf(entry: Pick<IPCacheEntry, 'IP' | 'Mask'>): string {
  return entry.Mask === null ? entry.IP : `${entry.IP}/${maskPrefixLength(entry.Mask)}`;
}

export function decodeIPCacheEntry(
  key: string,
  bytes: RecordBytes,
  opts: DecodeOptions = {},
): Decoded<IPCacheEntry> {
  return decodeWith(key, bytes, opts.maxBytes ?? DEFAULT_MAX_RECORD_BYTES, (text) => {
    const obj = object(parseJson(text), '');
    const ip = ipAddress(field(obj, 'IP', ''), 'IP');
    const hostIP = obj.HostIP === undefined || obj.HostIP === '' ? '' : ipAddress(obj.HostIP, 'HostIP');
    const namespace =
      obj.K8sNamespace === undefined || obj.K8sNamespace === ''
        ? ''
        : dnsLabel(obj.K8sNamespace, 'K8sNamespace');
    const pod =
      obj.K8sPodName === undefined || obj.K8sPodName === '' ? '' : dnsSubdomain(obj.K8sPodName, 'K8sPodName');
    return {
      IP: ip,
      Mask: obj.Mask === undefined || obj.Mask === null ? null : mask(obj.Mask, 'Mask', ip),
      HostIP: hostIP,
      ID: integer(field(obj, 'ID', ''), 'ID', 1, MAX_IDENTITY),
      K8sNamespace: namespace,
      K8sPodName: pod,
      NamedPorts:
        obj.NamedPorts === undefined || obj.NamedPorts === null
          ? null
          : namedPorts(obj.NamedPorts, 'NamedPorts'),
    };
  });
}

// ---------------------------------------------------------------- canaries and heartbeat

/** Canaries and the heartbeat hold a timestamp; we write RFC 3339. */
export const encodeTimestamp = (at: Date = new Date()): string => at.toISOString();

/**
 * Readers only need to see these keys change, and Go writers differ in time format, so the
 * value is kept as short opaque text.
 */
export function decodeTimestamp(key: string, bytes: RecordBytes): Decoded<string> {
  return decodeWith(key, bytes, MAX_TEXT_VALUE_BYTES, (text) => {
    if (text.trim() === '') fail('value', 'is empty');
    return text;
  });
}
