/**
 * A refused address never reaches the health checker: a peer (real etcd) publishes a backend on
 * this host's loopback, where a listener counts connections, beside a backend it owns; the agent's
 * own pieces (RemoteClusters → Controller → the real HealthChecker) run for a while, and the
 * listener must see no connection while a local backend on another loopback port is probed.
 * The peer's legitimate backend (in its pod CIDR) is checked in what the controller asks to probe
 * but not handed to the real checker: tests send traffic only to loopback.
 */
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Controller } from '../../agent/controller.js';
import { HealthChecker, type HealthTarget } from '../../agent/health/index.js';
import { AgentMetrics } from '../../agent/metrics.js';
import { RemoteClusters } from '../../agent/remote/remote-clusters.js';
import type { LocalAddresses } from '../../lib/kvstore/ownership.js';
import { createMetricsRegistry } from '../../lib/metrics.js';
import { DirectoryPeerSource } from '../../lib/remotes/config-source.js';
import { FakeDatapath, FakeLocal, localService, silentLog } from '../agent/fakes.js';
import { waitFor } from '../kvstore/helpers.js';
import { LOCAL, PeerEtcd, agentCert, node, service, writePeerEntry } from './helpers.js';

const EAST = { name: 'east', id: 2 };
const LOCAL_ADDRESSES: LocalAddresses = { podCidrs: ['10.101.0.0/16'], serviceCidrs: ['10.111.0.0/16'], clusterIPs: ['10.111.0.20'], nodeIPs: [] };

/** A TCP listener on 127.0.0.1 that counts accepted connections. */
async function countingListener(): Promise<{ server: Server; port: number; accepted: () => number }> {
  let accepted = 0;
  const server = createServer((socket) => {
    accepted++;
    socket.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port, accepted: () => accepted };
}

describe('ownership at import and the health checker', () => {
  let east: PeerEtcd;
  let dir: string;
  let remotes: RemoteClusters;
  let controller: Controller;
  let checker: HealthChecker;
  const listeners: Server[] = [];

  afterAll(async () => {
    await controller?.stop();
    checker?.close();
    await remotes?.stop();
    await east?.stop();
    for (const server of listeners) server.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('sends no probe to a refused address', async () => {
    const forged = await countingListener();
    const local = await countingListener();
    listeners.push(forged.server, local.server);

    east = await PeerEtcd.start(EAST.name);
    await east.publishConfig(EAST.name, EAST.id);
    await east.putNode(node(EAST.name, EAST.id, 'east-worker', '10.99.0.21', '10.12.1.0/24'));
    await east.putService({
      ...service(EAST.name, EAST.id, 'echo'),
      includeExternal: true, // global in east
      backends: {
        '127.0.0.1': { http: { Protocol: 'TCP', Port: forged.port } },
        '10.12.1.5': { http: { Protocol: 'TCP', Port: forged.port } },
      },
    });
    await east.putCanaries(EAST.name);
    dir = await mkdtemp(join(tmpdir(), 'ownership-probes-'));
    await writePeerEntry(dir, EAST.name, east.etcd.endpoints, east.etcd.ca.certPem, await agentCert(east.etcd));

    const registry = createMetricsRegistry();
    remotes = new RemoteClusters({
      localCluster: LOCAL,
      source: new DirectoryPeerSource({ dir, log: silentLog, debounceMs: 20 }),
      localAddresses: () => LOCAL_ADDRESSES,
      log: silentLog,
      metrics: registry,
      backoff: { minTimeoutMs: 20, maxTimeoutMs: 300 },
      dialTimeoutMs: 2_000,
    });
    checker = new HealthChecker({ intervalMs: 50, timeoutMs: 200 });
    const asked: HealthTarget[] = [];
    const fakeLocal = new FakeLocal();
    fakeLocal.list = [localService('echo', '10.111.0.20', { 'clustermesh.io/global': 'true', 'clustermesh.io/affinity': 'none' }, ['127.0.0.1'])];
    // The local backend answers on the local listener's port, the forged one on the forged listener's.
    fakeLocal.list[0].localBackends[0].ports.http = local.port;
    const datapath = new FakeDatapath();
    controller = new Controller({
      localCluster: LOCAL,
      local: fakeLocal,
      remotes,
      health: {
        setTargets: (targets) => {
          asked.push(...targets);
          checker.setTargets(targets.filter((t) => t.addr.startsWith('127.')));
        },
        status: (t) => checker.status(t),
        onTransition: (l) => checker.onTransition(l),
      },
      datapath,
      peerCacheTtlMs: 60_000,
      metrics: new AgentMetrics(registry, { peers: () => remotes.status(), peerCounts: () => new Map(), programStats: datapath.programStats }),
      log: silentLog,
    });
    controller.start();
    await remotes.start();

    await waitFor('the peer backend it owns in the probe list', () => asked.some((t) => t.clusterId === EAST.id && t.addr === '10.12.1.5'));
    await waitFor('the local backend probed a few times', () => local.accepted() >= 3);
    expect(forged.accepted()).toBe(0);
    expect(asked.filter((t) => t.clusterId === EAST.id).map((t) => t.addr)).not.toContain('127.0.0.1');
    expect(datapath.current.flatMap((s) => s.backends.filter((b) => b.clusterId === EAST.id).map((b) => b.addr))).toEqual(['10.12.1.5']);
    expect(remotes.status().find((s) => s.name === EAST.name)?.rejected).toBe(1);
  }, 30_000);
});
