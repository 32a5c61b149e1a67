/**
 * `clustermesh connect` / `disconnect`: links two installed clusters both ways. Everything is read
 * and checked, and every object prepared, before the first write, so a bad pair writes nothing.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { LOCAL_READER_USER, remoteUserName } from '../lib/kvstore/users.js';
import { UserError } from '../lib/errors.js';
import { type CertifiedKey, certificateCommonName, issueClientCert, verifyCertificate } from '../lib/pki.js';
import {
  APISERVER_SERVICE,
  CONFIG_MAP,
  type ClusterIdentity,
  DEFAULT_REMOTES_MOUNT_DIR,
  REMOTES_SECRET,
  SERVER_CERT_SECRET,
  parseClusterIdentity,
  readClusterCa,
} from './install.js';
import {
  type Cluster,
  nodeInternalIPs,
  readConfigMapData,
  readObject,
  readSecretData,
  secretObject,
  upsertObject,
} from './kube.js';

/** Overrides the NodePort-derived etcd endpoint(s) (comma-separated https URLs); the lab sets it. */
export const ETCD_ENDPOINT_ANNOTATION = 'clustermesh.io/etcd-endpoint';

export interface ClusterSide {
  cluster: Cluster;
  namespace: string;
  identity: ClusterIdentity;
  ca: CertifiedKey;
  /** where peers reach this cluster's etcd */
  endpoints: string[];
  /** where this cluster's agents see the remotes Secret's files */
  mountDir: string;
  /** this cluster's clustermesh-remotes Secret (decoded), {} when absent */
  remotes: Record<string, string>;
  /** with the chart's kvstoremesh: where this cluster's agents read every peer instead */
  cache?: CacheSide;
}

/** Cached mode: the agents' Secret, whose every peer entry names this cluster's own etcd. */
export interface CacheSide {
  /** the local etcd as the agents reach it (the ConfigMap's cache-endpoint) */
  endpoint: string;
  secret: string;
  /** that Secret (decoded), {} when absent */
  remotes: Record<string, string>;
}

export const CACHE_REMOTES_SECRET = 'clustermesh-cache-remotes';

/** Reads and checks one side: installed, valid identity, usable CA, server cert from that CA, endpoint. */
export async function readClusterSide(cluster: Cluster, namespace: string): Promise<ClusterSide> {
  const where = `context ${cluster.context}`;
  const config = await readConfigMapData(cluster, namespace, CONFIG_MAP);
  if (!config)
    throw new UserError(
      `${where}: clustermesh is not installed (no ConfigMap ${namespace}/${CONFIG_MAP}); run clustermesh install --context ${cluster.context} first`,
    );
  const identity = parseClusterIdentity(
    config['cluster-name'] ?? '',
    config['cluster-id'] ?? '',
    `${where}: ConfigMap ${CONFIG_MAP}: `,
  );
  const ca = await readClusterCa(cluster, namespace);
  if (!ca) throw new UserError(`${where}: no CA Secret ${namespace}/clustermesh-ca; run clustermesh install again`);
  await assertServerCertFromCa(cluster, namespace, ca);
  return {
    cluster,
    namespace,
    identity,
    ca,
    endpoints: await etcdEndpoints(cluster, namespace),
    mountDir: config['remotes-mount-dir'] || DEFAULT_REMOTES_MOUNT_DIR,
    remotes: (await readSecretData(cluster, namespace, REMOTES_SECRET)) ?? {},
    cache: await readCacheSide(cluster, namespace, config),
  };
}

async function readCacheSide(
  cluster: Cluster,
  namespace: string,
  config: Record<string, string>,
): Promise<CacheSide | undefined> {
  const endpoint = config['cache-endpoint'];
  if (!endpoint) return undefined;
  if (!/^https:\/\/[A-Za-z0-9.-]+:\d{1,5}$/.test(endpoint))
    throw new UserError(
      `context ${cluster.context}: ConfigMap ${namespace}/${CONFIG_MAP} cache-endpoint "${endpoint}" is not https://host:port; run clustermesh install again`,
    );
  const secret = config['cache-remotes-secret'] || CACHE_REMOTES_SECRET;
  return { endpoint, secret, remotes: (await readSecretData(cluster, namespace, secret)) ?? {} };
}

async function assertServerCertFromCa(cluster: Cluster, namespace: string, ca: CertifiedKey): Promise<void> {
  const where = `context ${cluster.context}: Secret ${namespace}/${SERVER_CERT_SECRET}`;
  const server = await readSecretData(cluster, namespace, SERVER_CERT_SECRET);
  if (!server?.['tls.crt']) throw new UserError(`${where} is missing; run clustermesh install again`);
  const verdict = verifyCertificate(server['tls.crt'], ca.certPem);
  if (!verdict.ok) throw new UserError(`${where}: ${verdict.reason}; run clustermesh install again to reissue it`);
}

type ServiceObject = KubernetesObject & {
  spec?: { ports?: Array<{ name?: string; nodePort?: number }> };
};

async function etcdEndpoints(cluster: Cluster, namespace: string): Promise<string[]> {
  const where = `context ${cluster.context}: Service ${namespace}/${APISERVER_SERVICE}`;
  const service = await readObject<ServiceObject>(cluster, {
    apiVersion: 'v1',
    kind: 'Service',
    namespace,
    name: APISERVER_SERVICE,
  });
  if (!service) throw new UserError(`${where} does not exist; did clustermesh install finish?`);
  const override = service.metadata?.annotations?.[ETCD_ENDPOINT_ANNOTATION];
  if (override) return parseEndpointList(override, where);
  const nodePort = service.spec?.ports?.find((p) => p.name === 'etcd')?.nodePort ?? service.spec?.ports?.[0]?.nodePort;
  if (!nodePort) throw new UserError(`${where} has no NodePort; set ${ETCD_ENDPOINT_ANNOTATION} or use type NodePort`);
  const ips = (await nodeInternalIPs(cluster)).map((n) => n.ip);
  if (ips.length === 0) throw new UserError(`${where}: no node has an InternalIP to reach the NodePort on`);
  return ips.map((ip) => `https://${ip.includes(':') ? `[${ip}]` : ip}:${nodePort}`);
}

export function parseEndpointList(text: string, where: string): string[] {
  const endpoints = text.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = endpoints.find((e) => !/^https:\/\/(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(e));
  if (endpoints.length === 0 || bad)
    throw new UserError(`${where}: annotation ${ETCD_ENDPOINT_ANNOTATION} "${text}" must be https://host:port[,…]`);
  return endpoints;
}

/** Why these two cannot be linked (one line), or null. Pure. */
export function pairProblem(a: ClusterSide, b: ClusterSide): string | null {
  const label = `contexts ${a.cluster.context} and ${b.cluster.context}`;
  if (a.cluster.server === b.cluster.server || a.ca.certPem.trim() === b.ca.certPem.trim())
    return `${label} are the same cluster (${a.identity.name}): a cluster cannot be connected to itself`;
  if (a.identity.name === b.identity.name)
    return `${label} are both named "${a.identity.name}": cluster names must be distinct (reinstall one with another --cluster-name)`;
  if (a.identity.id === b.identity.id)
    return `${label} both have cluster ID ${a.identity.id}: IDs must be distinct (reinstall one with another --cluster-id)`;
  return null;
}

/** The peers listed in a remotes Secret: keys without a dot (the others are their files). */
export function remoteNames(remotes: Record<string, string>): string[] {
  return Object.keys(remotes).filter((key) => !key.includes('.')).sort();
}

/** The Secret keys for one remote, in Cilium's cilium-clustermesh layout. Pure. */
export function remoteEntry(
  peer: string,
  endpoints: string[],
  peerCaPem: string,
  client: CertifiedKey,
  mountDir: string,
): Record<string, string> {
  const file = (suffix: string) => `${mountDir.replace(/\/+$/, '')}/${peer}.${suffix}`;
  return {
    [peer]: stringify({
      endpoints,
      'trusted-ca-file': file('etcd-client-ca.crt'),
      'cert-file': file('etcd-client.crt'),
      'key-file': file('etcd-client.key'),
    }),
    [`${peer}.etcd-client-ca.crt`]: peerCaPem,
    [`${peer}.etcd-client.crt`]: client.certPem,
    [`${peer}.etcd-client.key`]: client.keyPem,
  };
}

export function withoutRemote(remotes: Record<string, string>, peer: string): Record<string, string> {
  return Object.fromEntries(
    Object.entries(remotes).filter(([key]) => key !== peer && !key.startsWith(`${peer}.`)),
  );
}

/**
 * The client certificate `self`'s agents present to `peer`'s etcd: CN remote-<self>, signed by the
 * peer's CA. An existing one that still verifies is kept, so connect run twice changes nothing.
 */
async function clientCertFor(self: ClusterSide, peer: ClusterSide): Promise<CertifiedKey> {
  const name = peer.identity.name;
  const existing = { certPem: self.remotes[`${name}.etcd-client.crt`], keyPem: self.remotes[`${name}.etcd-client.key`] };
  const user = remoteUserName(self.identity.name);
  if (existing.certPem && existing.keyPem && verifyCertificate(existing.certPem, peer.ca.certPem).ok) {
    if (certificateCommonName(existing.certPem) === user) return existing;
  }
  return issueClientCert(peer.ca, { commonName: user });
}

async function connectedSecret(self: ClusterSide, peer: ClusterSide): Promise<KubernetesObject> {
  const entry = remoteEntry(
    peer.identity.name,
    peer.endpoints,
    peer.ca.certPem,
    await clientCertFor(self, peer),
    self.mountDir,
  );
  return secretObject(self.namespace, REMOTES_SECRET, { ...withoutRemote(self.remotes, peer.identity.name), ...entry });
}

/**
 * Cached mode: `peer` in the agents' Secret of `self`, naming self's own etcd, its CA and the
 * local-reader certificate (self's CA), which is kept while it still verifies.
 */
async function cachedSecret(self: ClusterSide, peer: ClusterSide): Promise<KubernetesObject | null> {
  if (!self.cache) return null;
  const { remotes } = self.cache;
  const name = peer.identity.name;
  const existing = { certPem: remotes[`${name}.etcd-client.crt`], keyPem: remotes[`${name}.etcd-client.key`] };
  const reusable =
    existing.certPem &&
    existing.keyPem &&
    verifyCertificate(existing.certPem, self.ca.certPem).ok &&
    certificateCommonName(existing.certPem) === LOCAL_READER_USER;
  const reader = reusable ? existing : await issueClientCert(self.ca, { commonName: LOCAL_READER_USER });
  const entry = remoteEntry(name, [self.cache.endpoint], self.ca.certPem, reader, self.mountDir);
  return secretObject(self.namespace, self.cache.secret, { ...withoutRemote(remotes, name), ...entry });
}

function withoutCachedPeer(self: ClusterSide, peer: string): KubernetesObject | null {
  return self.cache ? secretObject(self.namespace, self.cache.secret, withoutRemote(self.cache.remotes, peer)) : null;
}

const written = (objects: Array<KubernetesObject | null>): KubernetesObject[] =>
  objects.filter((o): o is KubernetesObject => o !== null);

export interface LinkResult {
  a: ClusterIdentity;
  b: ClusterIdentity;
}

async function readPair(a: Cluster, b: Cluster, namespace: string): Promise<[ClusterSide, ClusterSide]> {
  if (a.context === b.context && a.server === b.server)
    throw new UserError(`--context and --destination-context are both ${a.context}: a cluster cannot be connected to itself`);
  const sides = await Promise.all([readClusterSide(a, namespace), readClusterSide(b, namespace)]);
  const problem = pairProblem(...sides);
  if (problem) throw new UserError(problem);
  return sides;
}

export async function connectClusters(a: Cluster, b: Cluster, namespace: string): Promise<LinkResult> {
  const [sideA, sideB] = await readPair(a, b, namespace);
  // The peers' Secret first: a cached side's kvstoremesh mirrors the peer before its agents look.
  const forA = written([await connectedSecret(sideA, sideB), await cachedSecret(sideA, sideB)]);
  const forB = written([await connectedSecret(sideB, sideA), await cachedSecret(sideB, sideA)]);
  for (const object of forA) await upsertObject(a, object);
  for (const object of forB) await upsertObject(b, object);
  return { a: sideA.identity, b: sideB.identity };
}

export async function disconnectClusters(a: Cluster, b: Cluster, namespace: string): Promise<LinkResult> {
  const [sideA, sideB] = await readPair(a, b, namespace);
  // The agents' cache entry first, so they drain the peer before the kvstoremesh deletes its cache.
  for (const [cluster, self, peer] of [
    [a, sideA, sideB],
    [b, sideB, sideA],
  ] as const) {
    const objects = written([
      withoutCachedPeer(self, peer.identity.name),
      secretObject(namespace, REMOTES_SECRET, withoutRemote(self.remotes, peer.identity.name)),
    ]);
    for (const object of objects) await upsertObject(cluster, object);
  }
  return { a: sideA.identity, b: sideB.identity };
}
