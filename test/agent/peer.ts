/**
 * A peer cluster for agent tests and benchmarks: a real etcd (TLS, client certificates) whose
 * content is written directly as its clustermesh-apiserver would (cluster config, sync canaries,
 * ClusterService and node records), and the `--clustermesh-config` directory entry an agent reads.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { createEtcdClient } from '../../lib/kvstore/etcd.js';
import { encodeClusterConfig, encodeClusterService, encodeNode, encodeTimestamp, maskFromPrefixLength } from '../../lib/kvstore/codecs.js';
import { SYNCED_STATE_PREFIXES, clusterConfigKey, nodeKey, serviceKey, syncedCanaryKey } from '../../lib/kvstore/keys.js';
import type { ClusterService } from '../../lib/kvstore/types.js';
import { EtcdHarness } from '../harness/etcd.js';

export class PeerCluster {
  private constructor(
    readonly name: string,
    readonly id: number,
    readonly etcd: EtcdHarness,
    private admin: Etcd3,
  ) {}

  /** Starts the etcd and publishes the cluster config and every sync canary. */
  static async start(name: string, id: number): Promise<PeerCluster> {
    const etcd = await EtcdHarness.start();
    const peer = new PeerCluster(name, id, etcd, createEtcdClient(await etcd.clientConfig('root')));
    await peer.admin.put(clusterConfigKey(name)).value(encodeClusterConfig({ id, capabilities: { syncedCanaries: true, maxConnectedClusters: 255 } }));
    for (const prefix of SYNCED_STATE_PREFIXES) await peer.admin.put(syncedCanaryKey(name, prefix)).value(encodeTimestamp());
    return peer;
  }

  async putService(svc: ClusterService): Promise<void> {
    await this.admin.put(serviceKey(this.name, svc.namespace, svc.name)).value(encodeClusterService(svc));
  }

  /**
   * A node owning the IPv4 `podCidr` ("a.b.c.d/n"): a peer's backends and ipcache entries are
   * accepted only inside what its nodes claim (lib/kvstore/ownership.ts).
   */
  async putNode(name: string, internalIP: string, podCidr: string): Promise<void> {
    const [ip, length] = podCidr.split('/');
    await this.admin.put(nodeKey(this.name, name)).value(
      encodeNode({
        Name: name,
        Cluster: this.name,
        IPAddresses: [{ Type: 'InternalIP', IP: internalIP }],
        IPv4AllocCIDR: { IP: ip, Mask: maskFromPrefixLength(Number(length), 4) },
        IPv6AllocCIDR: null,
        ClusterID: this.id,
      }),
    );
  }

  async deleteService(namespace: string, name: string): Promise<void> {
    await this.admin.delete().key(serviceKey(this.name, namespace, name));
  }

  /** The raw client, e.g. for a batch of puts or a baseline watch. */
  client(): Etcd3 {
    return this.admin;
  }

  /** Writes `<dir>/<name>` and its certificate files (Cilium's clustermesh secret layout). */
  async writeConfigEntry(dir: string, user = 'remote-agent'): Promise<void> {
    mkdirSync(dir, { recursive: true });
    const cert = await this.etcd.clientCert(user);
    const file = (suffix: string) => join(dir, `${this.name}.${suffix}`);
    writeFileSync(file('etcd-client-ca.crt'), this.etcd.ca.certPem);
    writeFileSync(file('etcd-client.crt'), cert.certPem);
    writeFileSync(file('etcd-client.key'), cert.keyPem, { mode: 0o600 });
    writeFileSync(
      join(dir, this.name),
      [
        `endpoints: ["${this.etcd.endpoint}"]`,
        `trusted-ca-file: ${file('etcd-client-ca.crt')}`,
        `cert-file: ${file('etcd-client.crt')}`,
        `key-file: ${file('etcd-client.key')}`,
        '',
      ].join('\n'),
    );
  }

  static removeConfigEntry(dir: string, name: string): void {
    for (const entry of [name, `${name}.etcd-client-ca.crt`, `${name}.etcd-client.crt`, `${name}.etcd-client.key`]) {
      rmSync(join(dir, entry), { force: true });
    }
  }

  /** SIGKILLs etcd; the admin client reconnects by itself after `restart()`. */
  async kill(): Promise<void> {
    await this.etcd.kill();
  }

  async restart(): Promise<void> {
    await this.etcd.restart();
  }

  async stop(): Promise<void> {
    this.admin.close();
    await this.etcd.stop();
  }
}
