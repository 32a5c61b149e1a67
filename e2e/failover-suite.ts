/**
 * The failover suite on one lab, in one mesh mode (failover.test.ts: direct, failover-cached.test.ts:
 * cached): real traffic from a client pod in east to a global
 * Service with echo pods (a Deployment) in east and west, through every scenario: the official
 * control plane, the chart's pods run by the lab kubelets. Each scenario puts
 * the baseline back, so they are independent; the lab is brought up once and always taken down.
 * Prints the scenario table and writes it to e2e/out/<report>.
 * Needs root, the build (dist/: the lab kubelets run the chart's pods from there) and the official
 * Kubernetes binaries (scripts/setup.sh builds them).
 */
import { existsSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../cli/install.js';
import { labPaths } from '../lab/cluster/paths.js';
import { isGone, labStatus } from '../lab/topology/status.js';
import { kubeBinariesRequirement } from '../test/harness/kube-apiserver.js';
import { CLUSTER_SUITE_WAIT_MS, acquireLabLock } from '../test/harness/lab-lock.js';
import { builtRequirement, describeRequiring, rootRequirement } from '../test/harness/requirements.js';
import {
  type E2eEnv,
  FAILOVER_RATE,
  OUTAGE_MS,
  type ScenarioResult,
  abruptFailover,
  agentRestartUnderLoad,
  deadCluster,
  disconnectUnderLoad,
  failbackMinHealthy,
  failureBound,
  formatFailures,
  formatTable,
  writeReport,
  gracefulFailover,
  hostilePeer,
  ipv6DualStack,
  type MeshMode,
  peerCompaction,
  peerControlPlaneDown,
  peerRestartEmpty,
  setUpSuite,
  tearDownSuite,
  udpFailover,
} from './scenarios/index.js';

const ROOT = packageRoot();
const REQUIREMENTS = [
  rootRequirement(),
  builtRequirement(join(ROOT, 'dist'), [
    'agent/main.js',
    'clustermesh-apiserver/main.js',
    'lab/kubelet/main.js',
    'lab/workloads/client.js',
  ]),
  kubeBinariesRequirement(),
];
/** the abrupt cases must recover within 2 s: at most every request sent in those 2 s fails */
const RECOVERY_BUDGET_MS = 2000;

type Counts = Record<string, number>;
const counts = (r: ScenarioResult, fact: string): Counts => (r.facts[fact] ?? {}) as Counts;

export interface FailoverSuite {
  mode: MeshMode;
  /** the lab's prefix: its own namespaces, cgroups and pins */
  prefix: string;
  /** the report's file name under e2e/out/ */
  report: string;
}

export function describeFailover({ mode, prefix, report }: FailoverSuite): void {
  describeRequiring(`failover on the lab (${mode} mode)`, REQUIREMENTS, () => {
    const OUT = join(ROOT, 'e2e', 'out', report);
    let env: E2eEnv;
    const results: ScenarioResult[] = [];
    /** once this file holds the lab lock: the suite's own time, not the wait for another's */
    let started = 0;
    const run = async (scenario: (env: E2eEnv) => Promise<ScenarioResult>): Promise<ScenarioResult> => {
      const result = await scenario(env);
      results.push(result);
      return result;
    };

    let releaseLabLock: () => void = () => {};

    beforeAll(
      async () => {
        releaseLabLock = await acquireLabLock(); // the other cluster suites may run first (test/harness/lab-lock.ts)
        started = Date.now();
        env = await setUpSuite({ prefix, mode });
      },
      CLUSTER_SUITE_WAIT_MS + 11 * 60_000,
    );

    afterAll(async () => {
      try {
        if (results.length > 0) {
          process.stdout.write(
            `\nfailover scenarios, ${mode} mode (${cpus().length} cores, kernel ${release()}):\n${formatTable(results)}\n${formatFailures(results)}\n`,
          );
          writeReport(OUT, results, {
            date: new Date().toISOString(),
            mode,
            cores: cpus().length,
            kernel: release(),
            suiteSeconds: Math.round((Date.now() - started) / 1000),
          });
        }
      } finally {
        await tearDownSuite(prefix);
        releaseLabLock();
      }
      expect(isGone(await labStatus(prefix))).toBe(true);
      expect(existsSync(labPaths(prefix).bpfRoot)).toBe(false);
    }, 60_000);

    describe('1. graceful failover (EndpointSlice first, then the pods stop)', () => {
      test('no request fails and west takes over', async () => {
        const r = await run(gracefulFailover);
        expect(r.failed).toBe(0);
        expect(r.recoveryMs).not.toBeNull();
        expect(counts(r, 'answeredBy').west).toBeGreaterThan(0);
      }, 60_000);
    });

    describe("2. abrupt failover (pods killed, their node's kubelet hung: endpoints still listed)", () => {
      test('the health checker quarantines them: full recovery within 2 s, failures bounded', async () => {
        const r = await run(abruptFailover);
        expect(r.recoveryMs).not.toBeNull();
        expect(r.recoveryMs!).toBeLessThanOrEqual(RECOVERY_BUDGET_MS);
        expect(r.failed).toBeLessThanOrEqual(failureBound(FAILOVER_RATE, RECOVERY_BUDGET_MS));
        expect(counts(r, 'answeredBy').west).toBeGreaterThan(0);
      }, 60_000);
    });

    describe('3. failback with affinity local and min-healthy-local 2', () => {
      test('west stays in use with one healthy east backend, and leaves with two', async () => {
        const r = await run(failbackMinHealthy);
        expect(r.failed).toBe(0);
        expect(counts(r, 'activeWithOneLocal')).toEqual({ east: 1, west: 2 });
        expect(counts(r, 'answeredWithOneLocal').west).toBeGreaterThan(0);
        expect(counts(r, 'answeredWithOneLocal').east).toBeGreaterThan(0);
      }, 60_000);
    });

    describe(`4. west's clustermesh-apiserver pod (etcd + apiserver) down for ${OUTAGE_MS / 1000} s`, () => {
      // cached: east's kvstoremesh, not the agents, loses and regains west (e2e/scenarios/peer-readers.ts)
      test('traffic to west never fails, and the resync writes nothing to the maps', async () => {
        const r = await run(peerControlPlaneDown);
        expect(r.failed).toBe(0);
        expect(counts(r, 'answeredDuringOutage').west).toBeGreaterThan(0);
        expect(Object.values(counts(r, 'mapWritesOutageAndResync'))).toEqual([0, 0]);
        expect(r.facts.backendsUnchanged).toBe(true);
      }, 90_000);
    });

    describe('5. the client node agent SIGKILLed and restarted under load', () => {
      test('no request fails; the restarted agent programs the same backends', async () => {
        const r = await run(agentRestartUnderLoad);
        expect(r.failed).toBe(0);
        expect(r.facts.backendsUnchanged).toBe(true);
      }, 60_000);
    });

    describe('6. clustermesh disconnect under load', () => {
      test("west's backends leave east's maps, traffic stays in east, nothing fails", async () => {
        const r = await run(disconnectUnderLoad);
        expect(r.failed).toBe(0);
        expect(counts(r, 'answeredBy').west).toBeGreaterThan(0);
        expect(Object.keys(counts(r, 'answeredAfterDrain'))).toEqual(['east']);
      }, 60_000);
    });

    describe("7. dead cluster: west's node links pulled", () => {
      // the TTL is the agents' in direct mode, the kvstoremesh's (apiserver.kvstoremesh.peerCacheTTL) in cached mode
      test('east stops sending to west after the health checks, and drops it after the cache TTL', async () => {
        const r = await run(deadCluster);
        expect(r.failed).toBeLessThanOrEqual(failureBound(FAILOVER_RATE, RECOVERY_BUDGET_MS));
        expect(r.facts.failedAfterQuarantine).toBe(0);
        expect(r.facts.droppedFromMapsAfterMs as number).toBeGreaterThanOrEqual(env.peerCacheTtlMs);
        expect(Object.keys(counts(r, 'answeredAfterDrop'))).toEqual(['east']);
      }, 120_000);
    });

    describe("8. hostile peer with admin access to west's etcd", () => {
      test('every record and forged address is refused and counted (cached: all by the kvstoremesh, none reaches an agent); maps and traffic untouched', async () => {
        const r = await run(hostilePeer);
        expect(r.failed).toBe(0);
        const expected = r.facts.expectedRejections as number;
        expect(expected).toBeGreaterThanOrEqual(30);
        const perAgent = r.facts.expectedPerAgent as number;
        const byMesh = r.facts.expectedByMesh as number;
        expect([perAgent, byMesh]).toEqual(mode === 'cached' ? [0, expected] : [expected, 0]);
        expect(Object.values(counts(r, 'rejectedPerAgent'))).toEqual([perAgent, perAgent]);
        expect(r.facts.rejectedByMesh).toBe(byMesh);
        expect(r.facts.unexpected).toBe(''); // each record kept out and counted under its reason
        expect(Object.values(counts(r, 'mapWritesPerAgent'))).toEqual([0, 0]);
        expect(r.facts.backendsUnchanged).toBe(true);
        expect(Object.keys(counts(r, 'answeredBy'))).toEqual(['east']);
      }, 60_000);
    });

    describe('9. UDP and IPv6', () => {
      test('UDP: graceful failover with no lost datagram', async () => {
        const r = await run(udpFailover);
        expect(r.failed).toBe(0);
        expect(counts(r, 'answeredBy').west).toBeGreaterThan(0);
      }, 60_000);

      test('IPv6: a dual-stack global Service answers on its IPv6 ClusterIP from both clusters', async () => {
        const r = await run(ipv6DualStack);
        expect(r.failed).toBe(0);
        expect(counts(r, 'answeredBy').east).toBeGreaterThan(0);
        expect(counts(r, 'answeredBy').west).toBeGreaterThan(0);
      }, 60_000);
    });

    describe("10. west's clustermesh-apiserver pod deleted: a new one starts with an empty etcd", () => {
      test('traffic to west never fails; no east agent deletes a record or a map entry of west', async () => {
        const r = await run(peerRestartEmpty);
        expect(r.failed).toBe(0);
        expect(Object.values(counts(r, 'recordDeletes'))).toEqual([0, 0]);
        expect(Object.values(counts(r, 'mapDeletes'))).toEqual([0, 0]);
        expect(r.facts.fewestRemoteBackendsProgrammed).toBe(2);
      }, 120_000);
    });

    describe("11. west's etcd history compacted under load", () => {
      test('nothing fails and nothing leaves the maps', async () => {
        const r = await run(peerCompaction);
        expect(r.failed).toBe(0);
        expect(Object.values(counts(r, 'recordDeletes'))).toEqual([0, 0]);
        expect(Object.values(counts(r, 'mapDeletes'))).toEqual([0, 0]);
      }, 90_000);
    });
  });
}
