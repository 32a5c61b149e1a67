/** The built daemon as a process: flag errors are one line + exit 1; SIGTERM stops it with exit 0. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_USER } from '../../lib/kvstore/users.js';
import { freePort } from '../harness/etcd.js';
import { createAll, goldenCluster } from './cluster-fixtures.js';
import { startEnv, stopEnv, waitFor, type TestEnv } from './helpers.js';

const MAIN = join(process.cwd(), 'dist/clustermesh-apiserver/main.js');

function runWithFlags(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, [MAIN, ...args], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { PATH: process.env.PATH ?? '', ...env },
  });
  return { status: result.status, stderr: result.stderr };
}

describe('clustermesh-apiserver as a process', () => {
  let env: TestEnv;
  let dir: string;
  let child: ChildProcess | undefined;
  const flags: string[] = [];

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first (npx tsc -p tsconfig.json)`);
    env = await startEnv();
    await createAll(env.kube, goldenCluster());
    dir = await mkdtemp(join(tmpdir(), 'clustermesh-apiserver-test-'));
    const admin = await env.etcd.clientCert(ADMIN_USER);
    await writeFile(join(dir, 'ca.crt'), env.etcd.ca.certPem);
    await writeFile(join(dir, 'tls.crt'), admin.certPem);
    await writeFile(join(dir, 'tls.key'), admin.keyPem, { mode: 0o600 });
    await writeFile(join(dir, 'kubeconfig'), env.kube.kubeconfig('test'));
    flags.push(
      '--cluster-name=west',
      '--cluster-id=2',
      `--kubeconfig=${join(dir, 'kubeconfig')}`,
      `--etcd-endpoints=${env.etcd.endpoint}`,
      `--etcd-ca=${join(dir, 'ca.crt')}`,
      `--etcd-cert=${join(dir, 'tls.crt')}`,
      `--etcd-key=${join(dir, 'tls.key')}`,
    );
  });
  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await stopEnv(env);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.each([
    [
      'an out-of-range cluster ID',
      ['--cluster-id=300'],
      {},
      /^clustermesh-apiserver: --cluster-id "300" must be an integer from 1 to 255$/,
    ],
    [
      'a bad cluster name from the environment',
      [],
      { CLUSTERMESH_CLUSTER_NAME: 'West_1' },
      /^clustermesh-apiserver: --cluster-name "West_1" /,
    ],
    [
      'a plain-HTTP etcd endpoint',
      ['--etcd-endpoints=http://127.0.0.1:2379'],
      {},
      /--etcd-endpoints: "http:\/\/127\.0\.0\.1:2379" is not an https/,
    ],
    [
      'a missing key file',
      ['--etcd-key=/nonexistent/tls.key'],
      {},
      /cannot read the client key file \/nonexistent\/tls\.key/,
    ],
    ['a bad health address', ['--health-addr=localhost'], {}, /--health-addr "localhost" is not host:port/],
    ['an unknown flag', ['--bogus'], {}, /unknown option '--bogus'/],
  ])('refuses %s with one line and exit 1', (_what, extra, extraEnv, message) => {
    const base =
      'CLUSTERMESH_CLUSTER_NAME' in extraEnv ? flags.filter((f) => !f.startsWith('--cluster-name')) : flags;
    const { status, stderr } = runWithFlags([...base, ...extra], extraEnv);
    expect(status).toBe(1);
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr.trim()).toMatch(message);
  });

  it('becomes ready, serves /metrics, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const proc = spawn(process.execPath, [MAIN, ...flags, `--health-addr=127.0.0.1:${port}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn' },
    });
    child = proc;
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    let stderr = '';
    proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    proc.stdout?.resume();
    const ready = async () => {
      try {
        return (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200;
      } catch {
        return false;
      }
    };
    await waitFor(`readyz (stderr: ${stderr})`, ready, 30_000);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^clustermesh_apiserver_objects\{[^}]*kind="services"[^}]*\} 2$/m);
    expect(await env.admin.get('cilium/synced/west/cilium/state/services/v1').string()).not.toBeNull();
    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
