/**
 * Builds agent/remote's RemoteClusters from the agent's configuration: the one place that knows
 * how that module is constructed (peer set from `--clustermesh-config DIR`, or the
 * `clustermesh-remotes` Secret in `--namespace`).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import type { LocalAddresses } from '../lib/kvstore/ownership.js';
import type { Logger } from '../lib/log.js';
import type { RemoteViewSource } from './controller.js';
import type { AgentConfig } from './flags.js';
import { RemoteClusters } from './remote/remote-clusters.js';
import { DirectoryPeerSource, SecretPeerSource } from '../lib/remotes/config-source.js';

export interface RemoteWiring {
  config: Pick<AgentConfig, 'clustermeshConfig' | 'namespace'>;
  kubeConfig: KubeConfig;
  cluster: { name: string; id: number };
  /** what no peer may publish (the local informers' localAddresses) */
  localAddresses: () => LocalAddresses | null;
  log: Logger;
  metrics: Registry;
}

export function createRemoteClusters(w: RemoteWiring): RemoteViewSource & { start(): Promise<void>; stop(): Promise<void> } {
  const source = w.config.clustermeshConfig
    ? new DirectoryPeerSource({ dir: w.config.clustermeshConfig, log: w.log })
    : new SecretPeerSource({ kubeConfig: w.kubeConfig, namespace: w.config.namespace, log: w.log });
  return new RemoteClusters({ localCluster: w.cluster, source, localAddresses: w.localAddresses, log: w.log, metrics: w.metrics });
}
