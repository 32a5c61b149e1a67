/**
 * Peers: the `clustermesh-remotes` Secret (written by `clustermesh connect`) names one peer per key
 * without a dot (the other keys are its certificate files). Each peer gets the read-only etcd user
 * `remote-<peer>`; a peer whose key is gone loses it. No Secret means no peers.
 */
import type { Etcd3 } from 'etcd3';
import type { V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { clusterNameProblem } from '../../lib/kvstore/codecs.js';
import { addRemoteUser, listRemotePeers, removeRemoteUser } from '../etcd-bootstrap.js';
import type { ClusterInformers } from '../informers.js';
import type { WorkQueue } from '../workqueue.js';

export interface SecretPeers {
  peers: string[];
  invalid: Array<{ key: string; reason: string }>;
}

/** Pure: the peer names a remotes Secret lists. */
export function peersOfSecret(secret: V1Secret | undefined): SecretPeers {
  const keys = Object.keys({ ...secret?.data, ...secret?.stringData }).filter((key) => !key.includes('.'));
  const peers: string[] = [];
  const invalid: SecretPeers['invalid'] = [];
  for (const key of keys.sort()) {
    const problem = clusterNameProblem(key);
    if (problem) invalid.push({ key, reason: problem });
    else peers.push(key);
  }
  return { peers, invalid };
}

/** Pure: which remote users to create and which to remove. */
export function planPeerChanges(
  wanted: readonly string[],
  existing: readonly string[],
): { add: string[]; remove: string[] } {
  return {
    add: wanted.filter((peer) => !existing.includes(peer)),
    remove: existing.filter((peer) => !wanted.includes(peer)),
  };
}

export interface RemotesReconcilerOptions {
  self: string;
  secretName: string;
  /** the Secret's namespace (the daemon's own) */
  namespace: string;
  client: Etcd3;
  informers: Pick<ClusterInformers, 'remotesSecret'>;
  logger: Logger;
}

const REMOTES_KEY = 'remotes';

export class RemotesReconciler {
  constructor(private readonly opts: RemotesReconcilerOptions) {}

  /** Reconciles only once the Secret was listed: before that "absent" would remove every peer. */
  watch(queue: WorkQueue): void {
    const { remotesSecret } = this.opts.informers;
    const enqueue = () => {
      if (remotesSecret.isSynced) queue.add(REMOTES_KEY);
    };
    remotesSecret.on({ upsert: enqueue, delete: enqueue });
    void remotesSecret.synced.then(enqueue);
  }

  async reconcile(): Promise<void> {
    const { client, self, secretName, logger } = this.opts;
    const secret = this.opts.informers.remotesSecret.get(secretName, this.opts.namespace);
    const { peers, invalid } = peersOfSecret(secret);
    for (const { key, reason } of invalid) {
      logger.warn(
        { secret: secretName, key },
        `Secret ${secretName} key "${key}" is not a peer name: ${reason}`,
      );
    }
    const plan = planPeerChanges(peers, await listRemotePeers(client));
    for (const peer of plan.add) {
      await addRemoteUser(client, self, peer);
      logger.info({ peer }, `peer ${peer} may now read this cluster's etcd (user remote-${peer})`);
    }
    for (const peer of plan.remove) {
      await removeRemoteUser(client, peer);
      logger.info({ peer }, `peer ${peer} removed (user remote-${peer} deleted)`);
    }
  }
}
