/**
 * The peers a cluster connects to (its agents directly, or the kvstoremesh that caches them), parsed from the `clustermesh-remotes` layout (Cilium's
 * `cilium-clustermesh` secret): per peer `<name>` holds YAML `{endpoints, trusted-ca-file,
 * cert-file, key-file}`, the other entries (`<name>.etcd-client.crt`, …) are the files it names.
 * Pure: entries and a file resolver in, peer configs and per-peer errors out.
 */
import { basename } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { clusterNameProblem } from '../kvstore/codecs.js';

export interface PeerConfig {
  name: string;
  endpoints: string[];
  caPem: string;
  certPem: string;
  keyPem: string;
}

/** A peer entry that cannot be used; the error is one line for the status. */
export interface InvalidPeer {
  name: string;
  error: string;
}

export interface PeerConfigSet {
  peers: PeerConfig[];
  invalid: InvalidPeer[];
}

/** Reads the file a peer's YAML names; throws an Error whose message is one line. */
export type FileResolver = (reference: string) => string;

const FILE_FIELDS = [
  ['trusted-ca-file', 'caPem', 'CA'],
  ['cert-file', 'certPem', 'client certificate'],
  ['key-file', 'keyPem', 'client key'],
] as const;

/** Entry names that are peers: no dot (files have one; `..data` and friends start with one). */
export const isPeerEntryName = (entry: string): boolean => !entry.includes('.');

/** Parses every peer entry of `entries` (entry name → text); one bad peer never hides another. */
export function parsePeerConfigSet(
  entries: ReadonlyMap<string, string>,
  resolve: FileResolver,
): PeerConfigSet {
  const set: PeerConfigSet = { peers: [], invalid: [] };
  for (const name of [...entries.keys()].filter(isPeerEntryName).sort()) {
    try {
      set.peers.push(parsePeer(name, entries.get(name)!, resolve));
    } catch (err) {
      set.invalid.push({ name, error: `peer "${name}": ${firstLine((err as Error).message)}` });
    }
  }
  return set;
}

function parsePeer(name: string, text: string, resolve: FileResolver): PeerConfig {
  const nameProblem = clusterNameProblem(name);
  if (nameProblem) throw new Error(`the entry name is not a cluster name: it ${nameProblem}`);
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new Error(`not valid YAML (${firstLine((err as Error).message)})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new Error('must be a YAML mapping with endpoints, trusted-ca-file, cert-file and key-file');
  const fields = doc as Record<string, unknown>;
  const config: PeerConfig = {
    name,
    endpoints: endpointsOf(fields.endpoints),
    caPem: '',
    certPem: '',
    keyPem: '',
  };
  for (const [field, target, what] of FILE_FIELDS)
    config[target] = pemFile(fields[field], field, what, resolve);
  return config;
}

function endpointsOf(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0)
    throw new Error('endpoints must be a non-empty list of https:// URLs');
  return value.map((endpoint) => {
    if (typeof endpoint !== 'string' || !isHttpsUrl(endpoint))
      throw new Error(`endpoint ${JSON.stringify(endpoint)} is not an https:// URL`);
    return endpoint;
  });
}

function isHttpsUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'https:' && url.hostname !== '';
  } catch {
    return false;
  }
}

function pemFile(reference: unknown, field: string, what: string, resolve: FileResolver): string {
  if (typeof reference !== 'string' || reference === '')
    throw new Error(`${field} is missing (the ${what} file)`);
  const pem = resolve(reference);
  if (!pem.includes('-----BEGIN ')) throw new Error(`${field} ${reference} is not a PEM file (the ${what})`);
  return pem;
}

/**
 * A resolver over the entries themselves, by file name: a Secret has no directories, and the
 * YAML names files by where the Secret is mounted (`/var/lib/clustermesh/remotes/east.…`).
 */
export function entryResolver(entries: ReadonlyMap<string, string>, origin: string): FileResolver {
  return (reference) => {
    const text = entries.get(basename(reference));
    if (text === undefined)
      throw new Error(`${origin} has no entry ${basename(reference)} (named by ${reference})`);
    return text;
  };
}

export function samePeerConfig(a: PeerConfig, b: PeerConfig): boolean {
  return (
    a.caPem === b.caPem &&
    a.certPem === b.certPem &&
    a.keyPem === b.keyPem &&
    a.endpoints.length === b.endpoints.length &&
    a.endpoints.every((endpoint, i) => endpoint === b.endpoints[i])
  );
}

export function samePeerConfigSet(a: PeerConfigSet, b: PeerConfigSet): boolean {
  return (
    a.peers.length === b.peers.length &&
    a.peers.every((peer, i) => peer.name === b.peers[i]!.name && samePeerConfig(peer, b.peers[i]!)) &&
    JSON.stringify(a.invalid) === JSON.stringify(b.invalid)
  );
}

export interface PeerChanges {
  add: PeerConfig[];
  update: PeerConfig[];
  remove: string[];
}

/** What to do to go from the running peers to the wanted ones. */
export function planPeerChanges(
  running: ReadonlyMap<string, PeerConfig>,
  wanted: readonly PeerConfig[],
): PeerChanges {
  const wantedNames = new Set(wanted.map((peer) => peer.name));
  return {
    add: wanted.filter((peer) => !running.has(peer.name)),
    update: wanted.filter((peer) => running.has(peer.name) && !samePeerConfig(running.get(peer.name)!, peer)),
    remove: [...running.keys()].filter((name) => !wantedNames.has(name)),
  };
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? text;
}

/** Pure: a peer named like the local cluster is the local cluster itself, not a peer. */
export function withoutLocalCluster(set: PeerConfigSet, localName: string): PeerConfigSet {
  const self = set.peers.filter((peer) => peer.name === localName);
  if (self.length === 0) return set;
  return {
    peers: set.peers.filter((peer) => peer.name !== localName),
    invalid: [
      ...set.invalid,
      {
        name: localName,
        error: `peer "${localName}" is the local cluster's own name: a cluster cannot be its own peer (remove that entry)`,
      },
    ],
  };
}

/** Pure: why `peer` may not use cluster `id` (taken by the local cluster or another peer), or null. */
export function clusterIdConflict(
  peer: string,
  id: number,
  local: { name: string; id: number },
  claimed: ReadonlyArray<{ name: string; id: number | null }>,
): string | null {
  const fix = 'every cluster in a mesh needs its own ID (reinstall one of them with another --cluster-id)';
  if (id === local.id)
    return `cluster ID ${id} of "${peer}" is the ID of the local cluster "${local.name}": ${fix}`;
  const holder = claimed.find((other) => other.name !== peer && other.id === id);
  return holder ? `cluster ID ${id} of "${peer}" is already used by the peer "${holder.name}": ${fix}` : null;
}
