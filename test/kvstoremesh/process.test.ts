/**
 * The built kvstoremesh as a process (the chart's sidecar command): a bad flag or file is one line
 * and exit 1; with a peer it serves /readyz and its metrics, fills the cache, and SIGTERM stops it
 * with exit 0 leaving the cache for the next start.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { createEtcdClient } from '../../lib/kvstore/etcd.js';
import { cachedServicesClusterPrefix } from '../../lib/kvstore/keys.js';
import { ADMIN_USER } from '../../lib/kvstore/users.js';
import { EtcdHarness, freePort } from '../harness/etcd.js';
import { PeerEtcd, agentCert, node, service, writePeerEntry } from '../agent-remote/helpers.js';
import { waitFor } from '../kvstore/helpers.js';

const MAIN = join(process.cwd(), 'dist/clustermesh-apiserver/kvstoremesh/main.js');
const EAST = { name: 'east', id: 2 };

function run(args: string[]) {
  const result = spawnSync(process.execPath, [MAIN, ...args], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { PATH: process.env.PATH ?? '' },
  });
  return { status: result.status, lines: result.stderr.split('\n').filter(Boolean) };
}

describe('kvstoremesh as a process', () => {
  let local: EtcdHarness;
  let admin: Etcd3;
  let east: PeerEtcd;
  let dir: string;
  let child: ChildProcess | undefined;
  const flags: string[] = [];

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first (npx tsc -p tsconfig.json)`);
    [local, east] = await Promise.all([EtcdHarness.start(), PeerEtcd.start(EAST.name)]);
    admin = createEtcdClient(await local.clientConfig(ADMIN_USER));
    dir = await mkdtemp(join(tmpdir(), 'kvstoremesh-process-'));
    const cert = await local.clientCert(ADMIN_USER);
    await writeFile(join(dir, 'ca.crt'), local.ca.certPem);
    await writeFile(join(dir, 'tls.crt'), cert.certPem);
    await writeFile(join(dir, 'tls.key'), cert.keyPem, { mode: 0o600 });
    flags.push(
      '--cluster-name=west',
      '--cluster-id=1',
      `--etcd-endpoints=${local.endpoint}`,
      `--etcd-ca=${join(dir, 'ca.crt')}`,
      `--etcd-cert=${join(dir, 'tls.crt')}`,
      `--etcd-key=${join(dir, 'tls.key')}`,
    );
  });

  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    admin?.close();
    await Promise.all([local?.stop(), east?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['an out-of-range cluster ID', ['--cluster-id=0'], /--cluster-id.*1 to 255/],
    ['a cluster name that is not one', ['--cluster-name=West_1'], /--cluster-name/],
    [
      'a duration that is not one',
      ['--peer-cache-ttl=soon', '--clustermesh-config=/nonexistent'],
      /not a duration/,
    ],
    [
      'a missing CA file',
      ['--etcd-ca=/nonexistent/ca.crt', '--clustermesh-config=/nonexistent'],
      /^kvstoremesh: etcd: cannot read the CA file \/nonexistent\/ca.crt/,
    ],
    [
      'no source of peers outside a cluster',
      [],
      /^kvstoremesh: no --clustermesh-config nor --kubeconfig given/,
    ],
  ])('refuses %s with one line and exit 1', (_what, extra, message) => {
    const result = run([...flags, ...extra]);
    expect(result.lines).toEqual([expect.stringMatching(message)]);
    expect(result.status).toBe(1);
  });

  it('mirrors a peer, reports it in /readyz and its metrics, and stops on SIGTERM keeping the cache', async () => {
    await east.publishConfig(EAST.name, EAST.id);
    await east.putService(service(EAST.name, EAST.id, 'echo'));
    await east.putNode(node(EAST.name, EAST.id, 'east-worker', '10.99.0.21'));
    await east.putCanaries(EAST.name);
    const peers = join(dir, 'peers');
    await writePeerEntry(
      peers,
      EAST.name,
      east.etcd.endpoints,
      east.etcd.ca.certPem,
      await agentCert(east.etcd),
    );
    const port = await freePort();
    child = spawn(
      process.execPath,
      [MAIN, ...flags, `--clustermesh-config=${peers}`, `--health-addr=127.0.0.1:${port}`],
      {
        stdio: 'ignore',
        env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'silent' },
      },
    );
    const exited = new Promise<number | null>((resolve) => child!.once('exit', resolve));
    const get = async (path: string) => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`).catch(() => null);
      return res ? { status: res.status, body: await res.text() } : null;
    };
    await waitFor('east synced into the cache', async () =>
      /^clustermesh_kvstoremesh_peer_synced\{cluster="east"[^}]*\} 1$/m.test(
        (await get('/metrics'))?.body ?? '',
      ),
    );
    expect((await get('/readyz'))?.status).toBe(200);
    expect(await admin.getAll().prefix(cachedServicesClusterPrefix(EAST.name)).keys()).toEqual([
      'cilium/cache/services/v1/east/default/echo',
    ]);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(await admin.getAll().prefix(cachedServicesClusterPrefix(EAST.name)).keys()).toHaveLength(1);
  });
});
