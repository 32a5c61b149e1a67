/** agent/remote: the agent's connections to its peer clusters (see remote-clusters.ts). */
export { RemoteClusters, type RemoteClustersOptions } from './remote-clusters.js';
export type { LinkState, RemoteClusterStatus, RemoteClusterView } from './remote-cluster.js';
export {
  DEFAULT_REMOTES_SECRET,
  DirectoryPeerSource,
  SecretPeerSource,
  type PeerConfigSource,
} from '../../lib/remotes/config-source.js';
export type { InvalidPeer, PeerConfig, PeerConfigSet } from '../../lib/remotes/peer-config.js';
