/**
 * The built kvstoremesh as a process (the chart's sidecar command): a bad flag or file is one line
 * and exit 1; with a peer and the local cluster's official kube-apiserver it serves /readyz and its
 * metrics, fills the cache with what the peer owns (refusing what the local Nodes and
 * --pod-cidrs/--service-cidrs hold), and SIGTERM stops it with exit 0 leaving the cache for the
 * next start.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { decodeClusterService } from '../../lib/kvstore/codecs.js';
import { createEtcdClient } from '../../lib/kvstore/etcd.js';
import { cachedServicesClusterPrefix } from '../../lib/kvstore/keys.js';
import { ADMIN_USER } from '../../lib/kvstore/users.js';
import { EtcdHarness, freePort } from '../harness/etcd.js';
import {
  kubeBinariesRequirement,
  startKubeApiServer,
  type KubeApiServer,
} from '../harness/kube-apiserver.js';
import { describeRequiring } from '../harness/requirements.js';
import { startAll } from '../harness/start-all.js';
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

describeRequiring('kvstoremesh as a process', [kubeBinariesRequirement()], () => {
  let local: EtcdHarness;
  let admin: Etcd3;
  let east: PeerEtcd;
  let kube: KubeApiServer;
  let dir: string;
  let child: ChildProcess | undefined;
  const flags: string[] = [];

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first (npx tsc -p tsconfig.json)`);
    [local, east, kube] = await startAll(
      () => EtcdHarness.start(),
      () => PeerEtcd.start(EAST.name),
      () => startKubeApiServer({ serviceCIDRs: ['10.111.0.0/16'] }),
    );
    admin = createEtcdClient(await local.clientConfig(ADMIN_USER));
    dir = await mkdtemp(join(tmpdir(), 'kvstoremesh-process-'));
    await writeFile(join(dir, 'kubeconfig'), kube.kubeconfig('west'), { mode: 0o600 });
    // A Node of west: its address is no peer's to publish.
    await kube.objects.create({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'west-worker' },
      spec: { podCIDR: '10.101.1.0/24', podCIDRs: ['10.101.1.0/24'] },
      status: { addresses: [{ type: 'InternalIP', address: '10.99.0.11' }] },
    });
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
    await Promise.all([local?.stop(), east?.stop(), kube?.close()]);
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
      'a pod CIDR that is not one',
      ['--pod-cidrs=10.101.0.0/16,10.101.0.1/16', '--clustermesh-config=/nonexistent'],
      /--pod-cidrs.*has host bits set/,
    ],
    [
      'a missing CA file',
      ['--etcd-ca=/nonexistent/ca.crt', '--clustermesh-config=/nonexistent'],
      /^kvstoremesh: etcd: cannot read the CA file \/nonexistent\/ca.crt/,
    ],
    [
      'no Kubernetes API outside a cluster (the local Nodes and Services are read there)',
      ['--clustermesh-config=/nonexistent'],
      /^kvstoremesh: no --kubeconfig given and not running in a cluster/,
    ],
  ])('refuses %s with one line and exit 1', (_what, extra, message) => {
    const result = run([...flags, ...extra]);
    expect(result.lines).toEqual([expect.stringMatching(message)]);
    expect(result.status).toBe(1);
  });

  it('mirrors what a peer owns, reports it in /readyz and its metrics, and stops on SIGTERM keeping the cache', async () => {
    await east.publishConfig(EAST.name, EAST.id);
    await east.putService(service(EAST.name, EAST.id, 'echo', '10.102.1.5'));
    // backends in west's --pod-cidrs (no Node of west holds it yet) and on west's Node
    const forged = service(EAST.name, EAST.id, 'forged', '10.102.1.6');
    for (const ip of ['10.101.200.5', '10.99.0.11']) forged.backends[ip] = forged.backends['10.102.1.6'];
    await east.putService(forged);
    await east.putNode(node(EAST.name, EAST.id, 'east-worker', '10.99.0.21', '10.102.1.0/24'));
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
      [
        MAIN,
        ...flags,
        `--clustermesh-config=${peers}`,
        `--health-addr=127.0.0.1:${port}`,
        `--kubeconfig=${join(dir, 'kubeconfig')}`,
        '--pod-cidrs=10.101.0.0/16',
        '--service-cidrs=10.111.0.0/16',
      ],
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
    const cached = async () =>
      Object.fromEntries(
        Object.entries(await admin.getAll().prefix(cachedServicesClusterPrefix(EAST.name)).buffers()).map(
          ([key, bytes]) => {
            const decoded = decodeClusterService(key, bytes);
            return [
              key.split('/').pop(),
              decoded.ok ? Object.keys(decoded.value.backends).sort() : decoded.reason,
            ];
          },
        ),
      );
    expect(await cached()).toEqual({ echo: ['10.102.1.5'], forged: ['10.102.1.6'] });
    const metrics = (await get('/metrics'))?.body ?? '';
    for (const reason of ['local-pod-cidr', 'local-node-ip'])
      expect(metrics).toMatch(
        new RegExp(
          `^clustermesh_kvstoremesh_rejected_records_total\\{[^}]*reason="${reason}"[^}]*\\} 1$`,
          'm',
        ),
      );

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Object.keys(await cached())).toEqual(['echo', 'forged']);
  });
});
