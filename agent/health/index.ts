export { HealthChecker, DEFAULT_HEALTH_OPTIONS } from './checker.js';
export type { HealthCheckerOptions, HealthTransition, TransitionListener } from './checker.js';
export { nextState, INITIAL_STATE } from './state.js';
export type { TargetState, Thresholds } from './state.js';
export { peerRetention, DEFAULT_PEER_CACHE_TTL_MS } from './peer-cache.js';
export type { PeerLink, Retention } from './peer-cache.js';
export { targetKey } from './types.js';
export type { HealthLookup, HealthStatus, HealthTarget } from './types.js';
