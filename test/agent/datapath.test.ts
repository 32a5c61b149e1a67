/**
 * The loop driving the real datapath: pinned maps, programs attached to a test cgroup, a client
 * in that cgroup inside a test network namespace and servers standing behind the peer's backend
 * addresses there. The peer is an in-memory stand-in here (the etcd path is daemon.test.ts).
 */
import { Datapath } from '../../lib/datapath/index.js';
import { createMetricsRegistry } from '../../lib/metrics.js';
import { Controller } from '../../agent/controller.js';
import { AgentMetrics } from '../../agent/metrics.js';
import { ADDRS, createDatapathLab, type DatapathLab } from '../datapath/lab.js';
import { FakeHealth, FakeLocal, FakeRemotes, clusterService, localService, peer, silentLog } from './fakes.js';

const { vip: VIP, backends: [ADDR_A, ADDR_B] } = ADDRS[4];
const PLAIN_VIP = '10.200.100.2';

let lab: DatapathLab;
let ports: { A: number; B: number };
let controller: Controller | undefined;

function startController(datapath: Datapath, local: FakeLocal, remotes: FakeRemotes): Controller {
  const registry = createMetricsRegistry();
  const c = new Controller({
    localCluster: { name: 'east', id: 1 },
    local,
    remotes,
    health: new FakeHealth(),
    datapath,
    peerCacheTtlMs: 60_000,
    metrics: new AgentMetrics(registry, { peers: () => remotes.status(), peerCounts: () => new Map(), programStats: () => datapath.programStats() }),
    log: silentLog,
  });
  c.start();
  return c;
}

const westServices = () => [
  clusterService('west', 2, 'echo', [ADDR_A], { port: ports.A }),
  clusterService('west', 2, 'plain', [ADDR_B], { port: ports.B }),
];

function localView(): FakeLocal {
  const local = new FakeLocal();
  local.list = [localService('echo', VIP, { 'clustermesh.io/global': 'true' }), localService('plain', PLAIN_VIP, {})];
  return local;
}

beforeAll(async () => {
  lab = await createDatapathLab();
  ports = { A: (await lab.servers.listenTcp(ADDR_A, 'A')).port, B: (await lab.servers.listenTcp(ADDR_B, 'B')).port };
});

afterAll(async () => {
  await controller?.stop();
  await lab?.teardown();
});

it('serves a peer’s global service on the local ClusterIP, and never a non-global one', async () => {
  const remotes = new FakeRemotes();
  controller = startController(lab.dp, localView(), remotes);
  remotes.set([peer('west', 2, westServices())]);
  await controller.idle();

  expect(lab.dp.dump()).toEqual([{ vip: VIP, port: 80, proto: 'TCP', backends: [{ addr: ADDR_A, port: ports.A, state: 'active', clusterId: 2 }] }]);
  expect(await lab.client.tcpConnects(VIP, 80, 50)).toEqual({ reached: { A: 50 }, errors: {} });
  // Not translated: the plain VIP has no route in the namespace.
  expect(await lab.client.tcpConnects(PLAIN_VIP, 80, 2)).toEqual({ reached: {}, errors: { ENETUNREACH: 2 } });
});

it('keeps traffic flowing while the peer is disconnected, and resyncs without a map delete', async () => {
  const remotes = new FakeRemotes();
  await controller?.stop();
  controller = startController(lab.dp, localView(), remotes);
  remotes.set([peer('west', 2, westServices())]);
  await controller.idle();
  const before = controller.datapathTotals();

  remotes.set([peer('west', 2, westServices(), { state: 'disconnected', sinceMs: Date.now() })]);
  await controller.idle();
  expect(await lab.client.tcpConnects(VIP, 80, 20)).toEqual({ reached: { A: 20 }, errors: {} });
  remotes.set([peer('west', 2, westServices())]);
  await controller.idle();

  expect(controller.datapathTotals()).toMatchObject({ updates: before.updates, deletes: before.deletes });
});

it('restarts on the pinned maps with zero writes and no failed connect', async () => {
  await controller?.stop();
  controller = undefined;
  const connects = lab.client.tcpConnects(VIP, 80, 300);
  lab.dp.close();
  lab.dp = await Datapath.open({ pinDir: lab.pinDir });
  const remotes = new FakeRemotes();
  controller = startController(lab.dp, localView(), remotes);
  await controller.idle();
  remotes.set([peer('west', 2, westServices())]);
  await controller.idle();

  expect(controller.datapathTotals()).toMatchObject({ reconciles: 2, updates: 0, deletes: 0 });
  expect(await connects).toEqual({ reached: { A: 300 }, errors: {} });
});
