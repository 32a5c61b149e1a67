/**
 * The failover scenarios on the lab, as plain functions (no jest): the e2e suite asserts on their
 * results and the failover bench repeats them. Each takes the suite's environment (`setUpSuite`),
 * returns a ScenarioResult and puts the baseline back, so any order and any repetition works.
 */
export { setUpSuite, tearDownSuite, E2E_PREFIX, E2E_CACHED_PREFIX, SUITE_PEER_CACHE_TTL_MS, type E2eEnv, type MeshMode } from './suite.js';
export { formatFailures, formatTable, writeReport, type ScenarioResult } from './result.js';
export { failureBound } from './analysis.js';
export { FAILOVER_RATE, gracefulFailover, abruptFailover } from './failover.js';
export { failbackMinHealthy } from './failback.js';
export { peerControlPlaneDown, OUTAGE_MS } from './control-plane.js';
export { agentRestartUnderLoad } from './agent-restart.js';
export { disconnectUnderLoad } from './disconnect.js';
export { deadCluster } from './dead-cluster.js';
export { hostilePeer } from './hostile-peer.js';
export { udpFailover, ipv6DualStack } from './protocols.js';
export { peerRestartEmpty, peerCompaction } from './peer-restart.js';
