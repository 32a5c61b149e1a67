/** Pure conversions from Kubernetes objects to the kvstore records of DESIGN §3. */
export type { ClusterRef } from './cluster.js';
export type { Rejection, ObjectKind } from './rejection.js';
export {
  serviceToClusterService,
  isReadyOrServing,
  SERVICE_NAME_LABEL,
  type ExportContext,
  type ServiceConversion,
} from './service.js';
export { nodeToNodeRecord, type NodeConversion } from './node.js';
export { labelsOfPod, identityLabelsOfPod, podNeedsIdentity } from './labels.js';
export {
  IdentityAllocator,
  IdentityExhaustedError,
  parseExistingIdentities,
  identityRange,
  type Allocation,
  type ExistingIdentities,
} from './identity-allocator.js';
export { podToIPCacheEntries, type IPCacheConversion, type PodExportContext } from './ipcache.js';
