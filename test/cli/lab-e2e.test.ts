/**
 * The whole product on the lab, driven through the CLI as a user would: lab up (without connect)
 * → connect → status shows both clusters on every agent → service global → traffic crosses →
 * disconnect → status shows it gone, traffic stays local → lab down leaves nothing.
 * Needs root, the build (the lab kubelets run the chart's pods from dist/) and the official
 * Kubernetes binaries.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { labDown, openRunningLab, type RunningLab } from '../../lab/cluster/index.js';
import { labPaths } from '../../lab/cluster/paths.js';
import { isGone, labStatus } from '../../lab/topology/status.js';
import type { RequestRecord } from '../../lab/workloads/client.js';
import { createService, deployEcho, runClient } from '../../lab/workloads/deployment.js';
import { clusterOf } from '../../lab/workloads/timeline.js';
import { kubeBinariesRequirement } from '../harness/kube-apiserver.js';
import { CLUSTER_SUITE_WAIT_MS, acquireLabLock } from '../harness/lab-lock.js';
import { builtRequirement, describeRequiring, rootRequirement } from '../harness/requirements.js';
import { type CliResult, ROOT, runCli } from './helpers.js';

const DIST = join(ROOT, 'dist');
const REQUIREMENTS = [rootRequirement(), builtRequirement(DIST, ['agent/main.js', 'clustermesh-apiserver/main.js', 'lab/kubelet/main.js', 'cli/main.js']), kubeBinariesRequirement()];
const PREFIX = `cme${process.pid % 100000}`;
const ECHO = { namespace: 'e2e', name: 'echo', replicas: 2, targetPort: 8080 };

function expectOk(result: CliResult): CliResult {
  if (result.code !== 0) throw new Error(`exit ${result.code}: ${result.stderr}`);
  return result;
}

async function poll<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value).slice(0, 500)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Sends `count` requests from a client pod in east to the VIP; returns who answered. */
async function traffic(running: RunningLab, vip: string, seconds: number): Promise<RequestRecord[]> {
  const records: RequestRecord[] = [];
  const run = await runClient(running, 'east-worker', { target: `${vip}:80`, rate: 10, durationSeconds: seconds, distDir: DIST }, (r) => records.push(r));
  await run.done;
  await running.lab.removePod('east-worker', 'client');
  return records;
}

describeRequiring('the lab through the CLI', REQUIREMENTS, () => {
  const kubeconfig = labPaths(PREFIX).kubeconfig;
  const cli = (...args: string[]) => runCli(['--kubeconfig', kubeconfig, ...args], 120_000);
  const statusOf = async (context: string) => JSON.parse(expectOk(await cli('status', '--context', context, '-o', 'json')).stdout);
  let running: RunningLab;
  let releaseLabLock: () => void = () => {};

  beforeAll(async () => {
    releaseLabLock = await acquireLabLock();
  }, CLUSTER_SUITE_WAIT_MS + 60_000);

  afterAll(async () => {
    try {
      await labDown(PREFIX);
    } finally {
      releaseLabLock();
    }
  }, 60_000);

  test('up, connect, status, global service, traffic, disconnect, down', async () => {
    expectOk(await runCli(['lab', 'up', '--prefix', PREFIX, '--no-connect'], 300_000));
    running = openRunningLab(PREFIX);

    expectOk(await cli('connect', '--context', 'east', '--destination-context', 'west'));
    for (const [self, peer] of [['east', 'west'], ['west', 'east']]) {
      const waited = expectOk(await cli('status', '--context', self, '--wait', '--wait-timeout', '60s', '-o', 'json'));
      const report = JSON.parse(waited.stdout);
      expect(report.ready).toBe(true);
      // an agent on every node, the control plane's included (the chart tolerates its taint)
      expect(report.remotes).toEqual([expect.objectContaining({ name: peer, connected: 3, synced: 3, agents: 3 })]);
    }

    const vips = { east: '10.111.0.20', west: '10.112.0.20' };
    for (const cluster of ['east', 'west'] as const) {
      await createService(running, cluster, { namespace: ECHO.namespace, name: ECHO.name, clusterIP: vips[cluster], port: 80, targetPort: ECHO.targetPort });
      await deployEcho(running, cluster, ECHO);
      expectOk(await cli('service', 'global', `${ECHO.namespace}/${ECHO.name}`, '--context', cluster));
    }
    await poll('east agents to see west services', () => statusOf('east'), (r) => r.remotes[0]?.services.min >= 1 && r.globalServices.length === 1);

    const crossing = await poll('answers from both clusters', () => traffic(running, vips.east, 2), (rs) => new Set(rs.map((r) => clusterOf(r.answer))).has('west'));
    expect(crossing.filter((r) => clusterOf(r.answer) === 'east').length).toBeGreaterThan(0);

    expectOk(await cli('disconnect', '--context', 'east', '--destination-context', 'west'));
    const after = await poll('east to drop west', () => statusOf('east'), (r) => r.remotes.length === 0);
    expect(after.ready).toBe(true);
    const local = await poll('traffic to stay in east', () => traffic(running, vips.east, 2), (rs) => rs.every((r) => clusterOf(r.answer) === 'east'));
    expect(local.length).toBe(20);

    expectOk(await runCli(['lab', 'down', '--prefix', PREFIX]));
    expect(isGone(await labStatus(PREFIX))).toBe(true);
    expect(existsSync(labPaths(PREFIX).bpfRoot)).toBe(false);
    expect(existsSync(labPaths(PREFIX).root)).toBe(false);
  }, 240_000);
});
