/**
 * Jest's test order (jest.config.js testSequencer): the suites that run whole clusters start
 * first, in this order, and every other file after them in jest's own order (failed first, then
 * slowest). They hold the lab lock (test/harness/lab-lock.ts), so each runs alone on the machine:
 * the other worker waits for the lock until the last of them; kind goes last because its first
 * run builds images, which would hold every lab suite back, and it tolerates the unit suites
 * beside it.
 */
import Sequencer from '@jest/test-sequencer';

const CLUSTER_SUITES = [
  'e2e/failover-cached.test.ts',
  'e2e/failover.test.ts',
  'test/cli/lab-e2e.test.ts',
  'test/lab-kubelet/kubelet.test.ts',
  'e2e/kind/kind.test.ts',
];

const rank = (test) => CLUSTER_SUITES.findIndex((suffix) => test.path.endsWith(`/${suffix}`));

export default class ClusterSuitesFirst extends Sequencer {
  sort(tests) {
    const others = super.sort(tests.filter((t) => rank(t) < 0));
    const clusters = tests.filter((t) => rank(t) >= 0).sort((a, b) => rank(a) - rank(b));
    return [...clusters, ...others];
  }
}
