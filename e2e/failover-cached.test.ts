/**
 * The failover suite in cached mode, the chart's default: east's kvstoremesh mirrors west into
 * east's etcd and the agents read only that (e2e/failover-suite.ts).
 */
import { describeFailover } from './failover-suite.js';
import { E2E_CACHED_PREFIX } from './scenarios/index.js';

describeFailover({ mode: 'cached', prefix: E2E_CACHED_PREFIX, report: 'last-run-cached.json' });
