/**
 * Long-lived UDP sockets keep getting their replies from the VIP while 100,000 short TCP
 * connections go through the same node: the per-socket reverse NAT lives in each socket's own
 * storage (bpf/clustermesh.h, struct sock4_peers), so no other socket's churn can push it out.
 * With the former node-wide 65,536-entry LRU keyed by socket cookie, the connected socket's entry
 * (written at connect, not read until after the churn) was evicted, and its reply came from the
 * backend's address; sockets whose entry had been read once survived the LRU's second chance.
 */
import { ADDRS, createDatapathLab, type DatapathLab } from './lab.js';
import { SocketWorker, type UdpReply } from './worker-client.js';

const TCP_PORT = 80;
const UDP_PORT = 53;
const CONNECTS = 100_000;
const LANES = 8;

let lab: DatapathLab;
let udpClient: SocketWorker; // a second client in the cgroup; the namespace's teardown stops it

beforeAll(async () => {
  lab = await createDatapathLab();
  udpClient = SocketWorker.start(lab.ns, lab.cgroup.dir);
});

afterAll(async () => {
  await lab?.teardown();
});

it(`UDP replies keep coming from the VIP while ${CONNECTS.toLocaleString('en')} short TCP connections run beside them`, async () => {
  const { vip, backends } = ADDRS[4];
  const tcp = await lab.servers.listenTcp(backends[0], 'tcp');
  const udpPorts = [(await lab.servers.listenUdp(backends[0], 'A')).port, (await lab.servers.listenUdp(backends[1], 'B')).port];
  lab.dp.reconcile([
    { vip, port: TCP_PORT, proto: 'TCP', backends: [{ addr: backends[0], port: tcp.port, state: 'active', clusterId: 0 }] },
    { vip, port: UDP_PORT, proto: 'UDP', backends: backends.map((addr, i) => ({ addr, port: udpPorts[i], state: 'active' as const, clusterId: 0 })) },
  ]);
  const idle = await udpClient.udpOpen(4); // one exchange before the churn, one after it
  const busy = await udpClient.udpOpen(4); // exchanges all along
  // connected before the churn, first exchange after it: its entry is written and never read meanwhile
  const connected = await udpClient.udpOpen(4, { host: vip, port: UDP_PORT });
  const first = await idle.exchange(vip, UDP_PORT);

  let churnDone = false;
  const churn = lab.client.tcpConnects(vip, TCP_PORT, CONNECTS, LANES).finally(() => (churnDone = true));
  const during: UdpReply[] = [];
  while (!churnDone) during.push(await busy.exchange(vip, UDP_PORT));
  const { reached, errors } = await churn;
  during.push(await busy.exchange(vip, UDP_PORT));
  const last = await idle.exchange(vip, UDP_PORT);
  const late = await connected.exchange();

  expect(errors).toEqual({});
  expect(reached).toEqual({ tcp: CONNECTS });
  const fromVip = { address: vip, port: UDP_PORT };
  expect(during.length).toBeGreaterThan(1);
  expect(during.filter((r) => r.error !== undefined || r.from?.address !== vip || r.from?.port !== UDP_PORT)).toEqual([]);
  expect(new Set(during.map((r) => r.name)).size).toBe(1); // the busy socket stayed on its backend
  expect([first.from, last.from, late.from]).toEqual([fromVip, fromVip, fromVip]);
  expect(last.name).toBe(first.name); // and so did the idle one
  expect(lab.dp.programStats()).toEqual({ sockStateFailed: 0, sockPeerReplaced: 0 });
  await Promise.all([idle.close(), busy.close(), connected.close()]);
}, 300_000); // 100,000 connects take ~20 s alone on this 2-core VM; more beside the full suite

