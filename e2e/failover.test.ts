/** The failover suite in direct mode: every east agent reads west's etcd itself (e2e/failover-suite.ts). */
import { describeFailover } from './failover-suite.js';
import { E2E_PREFIX } from './scenarios/index.js';

describeFailover({ mode: 'direct', prefix: E2E_PREFIX, report: 'last-run.json' });
