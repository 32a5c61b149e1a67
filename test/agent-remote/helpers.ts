/** Peers as an apiserver would publish them, and peer entries as `clustermesh connect` writes them. */
import type { Etcd3 } from 'etcd3';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { addRemoteUser, bootstrapEtcd } from '../../clustermesh-apiserver/etcd-bootstrap.js';
import { ADMIN_USER, remoteUserName } from '../../lib/kvstore/users.js';
import { issueClientCert } from '../../lib/pki.js';
import {
  CLUSTER_LABEL,
  IDENTITY_CLUSTER_SHIFT,
  encodeClusterConfig,
  encodeClusterService,
  encodeIPCacheEntry,
  encodeIdentityLabels,
  encodeNode,
  encodeTimestamp,
  maskFromPrefixLength,
} from '../../lib/kvstore/codecs.js';
import { createEtcdClient } from '../../lib/kvstore/etcd.js';
import {
  SYNCED_STATE_PREFIXES,
  clusterConfigKey,
  identityKey,
  ipcacheKey,
  nodeKey,
  serviceKey,
  syncedCanaryKey,
} from '../../lib/kvstore/keys.js';
import type { ClusterService, NodeRecord } from '../../lib/kvstore/types.js';
import { EtcdHarness } from '../harness/etcd.js';

export const LOCAL = { name: 'west', id: 1 };

export const service = (
  cluster: string,
  clusterID: number,
  name: string,
  backend = '10.12.1.5',
): ClusterService => ({
  cluster,
  namespace: 'default',
  name,
  frontends: { '10.112.0.10': { http: { Protocol: 'TCP', Port: 80 } } },
  backends: { [backend]: { http: { Protocol: 'TCP', Port: 8080 } } },
  labels: {},
  selector: { app: name },
  includeExternal: false,
  shared: true,
  clusterID,
});

/** `podCidr` (IPv4 "a.b.c.d/n"): what the peer owns besides the node IP (lib/kvstore/ownership.ts). */
export const node = (cluster: string, clusterID: number, name: string, ip: string, podCidr?: string): NodeRecord => ({
  Name: name,
  Cluster: cluster,
  IPAddresses: [{ Type: 'InternalIP', IP: ip }],
  IPv4AllocCIDR: podCidr === undefined ? null : { IP: podCidr.split('/')[0], Mask: maskFromPrefixLength(Number(podCidr.split('/')[1]), 4) },
  IPv6AllocCIDR: null,
  ClusterID: clusterID,
});

/** A peer's etcd, bootstrapped as its apiserver does, written to with the admin user. */
export class PeerEtcd {
  private constructor(
    readonly etcd: EtcdHarness,
    readonly admin: Etcd3,
  ) {}

  static async start(cluster: string): Promise<PeerEtcd> {
    const etcd = await EtcdHarness.start();
    const peer = new PeerEtcd(etcd, createEtcdClient(await etcd.clientConfig(ADMIN_USER)));
    try {
      await bootstrapEtcd(peer.admin, { cluster, peers: [LOCAL.name] });
    } catch (err) {
      await peer.stop();
      throw err;
    }
    return peer;
  }

  async publishConfig(cluster: string, id: number): Promise<void> {
    await this.admin
      .put(clusterConfigKey(cluster))
      .value(encodeClusterConfig({ id, capabilities: { syncedCanaries: true, maxConnectedClusters: 255 } }));
  }

  async putService(svc: ClusterService): Promise<void> {
    await this.admin.put(serviceKey(svc.cluster, svc.namespace, svc.name)).value(encodeClusterService(svc));
  }

  async putNode(n: NodeRecord): Promise<void> {
    await this.admin.put(nodeKey(n.Cluster, n.Name)).value(encodeNode(n));
  }

  /** An identity of `cluster` and a pod address holding it, on the node at `hostIP`. */
  async putPod(cluster: string, clusterID: number, local: number, ip: string, hostIP = '10.99.0.3'): Promise<number> {
    const id = (clusterID << IDENTITY_CLUSTER_SHIFT) | local;
    await this.admin
      .put(identityKey(id))
      .value(encodeIdentityLabels({ 'k8s:app': `app${local}`, [CLUSTER_LABEL]: cluster }));
    await this.admin.put(ipcacheKey(ip)).value(
      encodeIPCacheEntry({
        IP: ip,
        Mask: null,
        HostIP: hostIP,
        ID: id,
        K8sNamespace: 'default',
        K8sPodName: `pod${local}`,
        NamedPorts: null,
      }),
    );
    return id;
  }

  async putCanaries(cluster: string): Promise<void> {
    for (const prefix of SYNCED_STATE_PREFIXES)
      await this.admin.put(syncedCanaryKey(cluster, prefix)).value(encodeTimestamp());
  }

  /** Lets `remote-<LOCAL>` also read the config and canaries of `cluster` (a second cluster on this etcd). */
  async hostAlso(cluster: string): Promise<void> {
    await addRemoteUser(this.admin, cluster, LOCAL.name);
  }

  async stop(): Promise<void> {
    this.admin.close();
    await this.etcd.stop();
  }
}

/** Writes the entry of `peer` into a --clustermesh-config directory (relative file names). */
export async function writePeerEntry(
  dir: string,
  peer: string,
  endpoints: string[],
  caPem: string,
  client: { certPem: string; keyPem: string },
): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, `${peer}.etcd-client-ca.crt`), caPem);
  await writeFile(join(dir, `${peer}.etcd-client.crt`), client.certPem);
  await writeFile(join(dir, `${peer}.etcd-client.key`), client.keyPem, { mode: 0o600 });
  // The YAML last: the source must not see a peer whose files are not written yet.
  await writeFile(
    join(dir, peer),
    stringify({
      endpoints,
      'trusted-ca-file': `${peer}.etcd-client-ca.crt`,
      'cert-file': `${peer}.etcd-client.crt`,
      'key-file': `${peer}.etcd-client.key`,
    }),
  );
}

export async function removePeerEntry(dir: string, peer: string): Promise<void> {
  for (const name of [
    peer,
    `${peer}.etcd-client-ca.crt`,
    `${peer}.etcd-client.crt`,
    `${peer}.etcd-client.key`,
  ])
    await rm(join(dir, name), { force: true });
}

/** The client certificate the local cluster's agents present to `etcd` (CN remote-<local>). */
export const agentCert = (etcd: EtcdHarness) => etcd.clientCert(remoteUserName(LOCAL.name));
/** A new certificate for the same user, as a rotation issues it. */
export const rotatedAgentCert = (etcd: EtcdHarness) => issueClientCert(etcd.ca, { commonName: remoteUserName(LOCAL.name) });
