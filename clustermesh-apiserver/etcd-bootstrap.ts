/**
 * Idempotent bootstrap of the cluster's etcd (DESIGN §6). etcd runs with --client-cert-auth, so
 * once auth is on the username is the client certificate's CN: the apiserver connects as
 * `admin`, each peer's agents as `remote-<peer>`. Passwords exist only because etcd 3.4 wants
 * one per user; they are random and never used.
 */
import { randomBytes } from 'node:crypto';
import {
  Etcd3,
  EtcdRoleExistsError,
  EtcdUserExistsError,
  EtcdUserNotFoundError,
  Range,
  type IPermissionRequest,
} from 'etcd3';
import {
  CACHE_PREFIX,
  CLUSTER_CONFIG_PREFIX,
  HEARTBEAT_KEY,
  STATE_PREFIX,
  SYNCED_PREFIX,
  clusterConfigKey,
  syncedClusterPrefix,
} from '../lib/kvstore/keys.js';
import { ADMIN_USER, LOCAL_READER_USER, remoteUserName } from '../lib/kvstore/users.js';

export const ROOT_USER = 'root';
export const ROOT_ROLE = 'root';
/** One role for every peer: what a peer may read depends only on this cluster. */
export const REMOTE_ROLE = 'remote';

/** Read-only access to what this cluster publishes, and nothing else. */
export function remoteReadGrants(self: string): IPermissionRequest[] {
  return [
    { permission: 'Read', range: Range.prefix(`${STATE_PREFIX}/`) },
    { permission: 'Read', range: Range.prefix(syncedClusterPrefix(self)) },
    { permission: 'Read', key: clusterConfigKey(self) },
    { permission: 'Read', key: HEARTBEAT_KEY },
  ];
}

/** The kvstoremesh cache as this cluster's agents read it: every peer's cache, canaries and config. */
export function localReadGrants(): IPermissionRequest[] {
  return [
    { permission: 'Read', range: Range.prefix(`${CACHE_PREFIX}/`) },
    { permission: 'Read', range: Range.prefix(`${SYNCED_PREFIX}/`) },
    { permission: 'Read', range: Range.prefix(`${CLUSTER_CONFIG_PREFIX}/`) },
    { permission: 'Read', key: HEARTBEAT_KEY },
  ];
}

/** The read-only user the local agents read the kvstoremesh cache as (idempotent). */
export async function ensureLocalReader(client: Etcd3): Promise<void> {
  await ensureRole(client, LOCAL_READER_USER);
  await client.role(LOCAL_READER_USER).grant(localReadGrants());
  await ensureUser(client, LOCAL_READER_USER, LOCAL_READER_USER);
}

export interface BootstrapOptions {
  /** This cluster's name. */
  cluster: string;
  /** Peers whose agents may read this etcd. */
  peers?: string[];
}

/**
 * Creates root (etcd needs it to enable auth), the admin user, the read-only remote role and one
 * user per peer, then enables auth. Safe to run on every start: existing users and roles are
 * kept, grants are re-applied. The client must be admin or root once auth is on.
 */
export async function bootstrapEtcd(client: Etcd3, opts: BootstrapOptions): Promise<void> {
  await ensureRole(client, ROOT_ROLE);
  await ensureUser(client, ROOT_USER, ROOT_ROLE);
  await ensureUser(client, ADMIN_USER, ROOT_ROLE);
  await ensureRemoteRole(client, opts.cluster);
  for (const peer of opts.peers ?? []) await ensureUser(client, remoteUserName(peer), REMOTE_ROLE);
  await client.auth.authEnable();
}

/** Lets the agents of `peer` read this cluster (idempotent). */
export async function addRemoteUser(client: Etcd3, self: string, peer: string): Promise<void> {
  await ensureRemoteRole(client, self);
  await ensureUser(client, remoteUserName(peer), REMOTE_ROLE);
}

/** Revokes `peer`'s access (idempotent). Open watches of that user end with the next request. */
export async function removeRemoteUser(client: Etcd3, peer: string): Promise<void> {
  try {
    await client.user(remoteUserName(peer)).delete();
  } catch (err) {
    if (!(err instanceof EtcdUserNotFoundError)) throw err;
  }
}

/** The remote users that exist, as peer names. */
export async function listRemotePeers(client: Etcd3): Promise<string[]> {
  const users = await client.getUsers();
  const prefix = remoteUserName('');
  return users
    .map((u) => u.name)
    .filter((name) => name.startsWith(prefix))
    .map((name) => name.slice(prefix.length))
    .sort();
}

async function ensureRemoteRole(client: Etcd3, self: string): Promise<void> {
  await ensureRole(client, REMOTE_ROLE);
  await client.role(REMOTE_ROLE).grant(remoteReadGrants(self));
}

async function ensureRole(client: Etcd3, name: string): Promise<void> {
  try {
    await client.role(name).create();
  } catch (err) {
    if (!(err instanceof EtcdRoleExistsError)) throw err;
  }
}

async function ensureUser(client: Etcd3, name: string, role: string): Promise<void> {
  try {
    await client.user(name).create(randomBytes(24).toString('base64'));
  } catch (err) {
    if (!(err instanceof EtcdUserExistsError)) throw err;
  }
  await client.user(name).addRole(role);
}
