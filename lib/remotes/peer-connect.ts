/**
 * The first step of following a peer, shared by the agent (agent/remote/remote-cluster.ts) and the
 * kvstoremesh (clustermesh-apiserver/kvstoremesh/peer-mirror.ts): dial the peer's etcd and read its
 * cluster config, validated as every record read from a peer is.
 */
import type { Etcd3 } from 'etcd3';
import { connectEtcd } from '../kvstore/etcd.js';
import { clusterConfigKey } from '../kvstore/keys.js';
import type { ClusterConfig } from '../kvstore/types.js';
import { validateRemoteRecord } from '../kvstore/validate.js';
import type { PeerConfig } from './peer-config.js';
import type { PeerLink } from './peer-link.js';

export interface PeerConnection {
  client: Etcd3;
  config: ClusterConfig;
  /** the etcd revision the config was read at */
  revision: string;
}

export interface ConnectPeerOptions {
  dialTimeoutMs?: number;
  /** added to the error when the peer's etcd has no config for it (where else to look) */
  missingConfigHint?: string;
  /**
   * Runs on the valid config before the connection is returned: throws to refuse it (the client
   * is then closed), or claims what the caller must hold only for a connection it keeps.
   */
  accept: (config: ClusterConfig, client: Etcd3) => void;
}

/** Dials the peer, reads and checks its cluster config; throws one line on failure. */
export async function connectPeer(peer: PeerConfig, opts: ConnectPeerOptions): Promise<PeerConnection> {
  const key = clusterConfigKey(peer.name);
  const { endpoints, caPem, certPem, keyPem } = peer;
  const client = await connectEtcd({ endpoints, caPem, certPem, keyPem, dialTimeoutMs: opts.dialTimeoutMs }, key);
  try {
    const response = await client.get(key).exec();
    const kv = response.kvs[0];
    if (!kv)
      throw new Error(
        `${key} does not exist in etcd at ${endpoints.join(', ')}: is the peer's clustermesh-apiserver running, and is its cluster named "${peer.name}"?${opts.missingConfigHint ? ` (${opts.missingConfigHint})` : ''}`,
      );
    const decoded = validateRemoteRecord('config', key, kv.value, { cluster: peer.name });
    if (!decoded.ok) throw new Error(`invalid cluster config: ${decoded.reason}`);
    opts.accept(decoded.value, client);
    return { client, config: decoded.value, revision: response.header.revision };
  } catch (err) {
    client.close();
    throw err;
  }
}

/**
 * Ends a connection to a peer and what watches through it. The client closes first, ending every
 * stream, so the watch cancels need no answer from the peer: a silent peer (a pulled cable) would
 * keep them waiting until a reconnect fails, a connect timeout of ~20 s. The watches stop in the
 * same turn, before the closed streams report errors they would log.
 */
export async function disconnectPeer(
  client: Etcd3 | null,
  link: PeerLink | null,
  watches: ReadonlyArray<{ stop(): Promise<void> }>,
): Promise<void> {
  client?.close();
  await Promise.all([link?.close(), ...watches.map((w) => w.stop())]);
}
