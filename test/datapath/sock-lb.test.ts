/**
 * The real programs in this kernel: a client in the test cgroup connects to VIPs inside a test
 * network namespace, and the servers behind them say who answered.
 */
import { constants } from '../../lib/datapath/codecs.js';
import type { DatapathService } from '../../lib/datapath/index.js';
import type { BackendState } from '../../lib/datapath/types.js';
import { ADDRS, BACKEND_NAMES, createDatapathLab, type DatapathLab } from './lab.js';

const VIP_PORT = 80;
const UDP_VIP_PORT = 53;

let lab: DatapathLab;

beforeAll(async () => {
  lab = await createDatapathLab();
});

afterAll(async () => {
  await lab?.teardown();
});

describe.each([4, 6] as const)('socket LB over IPv%d', (family) => {
  const { vip, backends } = ADDRS[family];
  let tcpPorts: number[] = [];
  let udpPorts: number[] = [];

  beforeAll(async () => {
    tcpPorts = [];
    udpPorts = [];
    for (const [i, addr] of backends.entries()) {
      tcpPorts.push((await lab.servers.listenTcp(addr, BACKEND_NAMES[i])).port);
      udpPorts.push((await lab.servers.listenUdp(addr, BACKEND_NAMES[i])).port);
    }
  });

  const tcpService = (states: BackendState[]): DatapathService => ({
    vip,
    port: VIP_PORT,
    proto: 'TCP',
    backends: states.map((state, i) => ({ addr: backends[i], port: tcpPorts[i], state, clusterId: i })),
  });

  it('spreads 1,000 connects to the VIP over both active backends', async () => {
    lab.dp.reconcile([tcpService(['active', 'active'])]);
    const { reached, errors } = await lab.client.tcpConnects(vip, VIP_PORT, 1000);
    expect(errors).toEqual({});
    expect(reached.A + reached.B).toBe(1000);
    expect(reached.A).toBeGreaterThan(0);
    expect(reached.B).toBeGreaterThan(0);
  });

  it('sends every new connect to the remaining backend once one is removed', async () => {
    lab.dp.reconcile([{ ...tcpService(['active', 'active']), backends: [tcpService(['active', 'active']).backends[1]] }]);
    expect(await lab.client.tcpConnects(vip, VIP_PORT, 200)).toEqual({ reached: { B: 200 }, errors: {} });
  });

  it('never selects a quarantined backend', async () => {
    lab.dp.reconcile([tcpService(['quarantined', 'active'])]);
    expect(await lab.client.tcpConnects(vip, VIP_PORT, 300)).toEqual({ reached: { B: 300 }, errors: {} });
    const dumped = lab.dp.dump().find((s) => s.vip === vip && s.proto === 'TCP');
    expect(dumped?.backends.map((b) => [b.addr, b.state])).toEqual([
      [backends[1], 'active'],
      [backends[0], 'quarantined'],
    ]);
  });

  it('leaves the VIP untouched when no backend is active (it has no route here)', async () => {
    lab.dp.reconcile([tcpService(['terminating', 'maintenance'])]);
    expect(await lab.client.tcpConnects(vip, VIP_PORT, 5)).toEqual({ reached: {}, errors: { ENETUNREACH: 5 } });
  });

  it('reports the VIP as the peer of a connected socket (getpeername)', async () => {
    lab.dp.reconcile([tcpService(['active', 'active'])]);
    const result = await lab.client.tcpPeer(vip, VIP_PORT);
    expect(result.error).toBeUndefined();
    expect(BACKEND_NAMES).toContain(result.name);
    expect(result.peer).toEqual({ address: vip, port: VIP_PORT });
  });

  it('answers UDP from the VIP and keeps each socket on one backend', async () => {
    lab.dp.reconcile([
      {
        vip,
        port: UDP_VIP_PORT,
        proto: 'UDP',
        backends: backends.map((addr, i) => ({ addr, port: udpPorts[i], state: 'active' as const, clusterId: 0 })),
      },
    ]);
    const { perSocket } = await lab.client.udpExchanges(vip, UDP_VIP_PORT, 20, 5);
    const replies = perSocket.flat();
    expect(replies.filter((r) => r.error)).toEqual([]);
    expect(new Set(replies.map((r) => `${r.from?.address}|${r.from?.port}`))).toEqual(new Set([`${vip}|${UDP_VIP_PORT}`]));
    for (const socketReplies of perSocket) expect(new Set(socketReplies.map((r) => r.name)).size).toBe(1);
    expect(new Set(replies.map((r) => r.name))).toEqual(new Set(BACKEND_NAMES));
  });

  it('reaches the backends past the ones slot 0 holds inline (their own entries), and keeps UDP sockets on them', async () => {
    // two more backends than slot 0 holds: several servers per address, told apart by port
    const count = constants.CM_LB_INLINE_BACKENDS + 2;
    const names = Array.from({ length: count }, (_, i) => `S${i}`);
    const listening = async (listen: 'listenTcp' | 'listenUdp') => {
      const ports: number[] = [];
      for (const [i, name] of names.entries()) ports.push((await lab.servers[listen](backends[i % 2], name)).port);
      return ports.map((port, i) => ({ addr: backends[i % 2], port, state: 'active' as const, clusterId: 0 }));
    };
    lab.dp.reconcile([
      { vip, port: VIP_PORT, proto: 'TCP', backends: await listening('listenTcp') },
      { vip, port: UDP_VIP_PORT, proto: 'UDP', backends: await listening('listenUdp') },
    ]);
    const { reached, errors } = await lab.client.tcpConnects(vip, VIP_PORT, 600);
    expect(errors).toEqual({});
    expect(Object.keys(reached).sort()).toEqual([...names].sort()); // each has a 1/count chance a connect: 600 reach all
    // 60 sockets: the chance that none lands in the last two slots is 0.8^60, about 1e-6
    const { perSocket } = await lab.client.udpExchanges(vip, UDP_VIP_PORT, 60, 3);
    const replies = perSocket.flat();
    expect(replies.filter((r) => r.error || r.from?.address !== vip || r.from?.port !== UDP_VIP_PORT)).toEqual([]);
    for (const socketReplies of perSocket) expect(new Set(socketReplies.map((r) => r.name)).size).toBe(1);
  });
});

describe('IPv4-mapped destinations of a dual-stack IPv6 socket', () => {
  const { vip, backends } = ADDRS[4];
  const mappedVip = `::ffff:${vip}`;
  let tcpPorts: number[] = [];
  let udpPorts: number[] = [];

  beforeAll(async () => {
    tcpPorts = [];
    udpPorts = [];
    for (const [i, addr] of backends.entries()) {
      tcpPorts.push((await lab.servers.listenTcp(addr, BACKEND_NAMES[i])).port);
      udpPorts.push((await lab.servers.listenUdp(addr, BACKEND_NAMES[i])).port);
    }
    lab.dp.reconcile([
      { vip, port: VIP_PORT, proto: 'TCP', backends: backends.map((addr, i) => ({ addr, port: tcpPorts[i], state: 'active' as const, clusterId: 0 })) },
      { vip, port: UDP_VIP_PORT, proto: 'UDP', backends: backends.map((addr, i) => ({ addr, port: udpPorts[i], state: 'active' as const, clusterId: 0 })) },
    ]);
  });

  it('balances connect() to ::ffff:<VIP> over the IPv4 service', async () => {
    const { reached, errors } = await lab.client.tcpConnects(mappedVip, VIP_PORT, 400);
    expect(errors).toEqual({});
    expect(reached.A + reached.B).toBe(400);
    expect(reached.A).toBeGreaterThan(0);
    expect(reached.B).toBeGreaterThan(0);
  });

  it('reports ::ffff:<VIP> as the peer (getpeername)', async () => {
    const result = await lab.client.tcpPeer(mappedVip, VIP_PORT);
    expect(result.error).toBeUndefined();
    expect(BACKEND_NAMES).toContain(result.name);
    expect(result.peer).toEqual({ address: mappedVip, port: VIP_PORT });
  });

  it('answers UDP from ::ffff:<VIP> (recvmsg) and keeps each socket on one backend', async () => {
    const { perSocket } = await lab.client.udpExchanges(mappedVip, UDP_VIP_PORT, 20, 5);
    const replies = perSocket.flat();
    expect(replies.filter((r) => r.error)).toEqual([]);
    expect(new Set(replies.map((r) => `${r.from?.address}|${r.from?.port}`))).toEqual(new Set([`${mappedVip}|${UDP_VIP_PORT}`]));
    for (const socketReplies of perSocket) expect(new Set(socketReplies.map((r) => r.name)).size).toBe(1);
    expect(new Set(replies.map((r) => r.name))).toEqual(new Set(BACKEND_NAMES));
  });
});

describe('per-socket state', () => {
  const { vip, backends } = ADDRS[4];
  const FRONTENDS = 5; // one more than a socket keeps (CM_SOCK_PEERS in bpf/clustermesh.h)
  const ports = Array.from({ length: FRONTENDS }, (_, i) => 1000 + i);

  it('a UDP socket addressing more frontends than it keeps replaces its own oldest entry, counted', async () => {
    // a backend of its own per frontend: replies are told apart by the backend they come from
    const backendPorts: number[] = [];
    for (const port of ports) backendPorts.push((await lab.servers.listenUdp(backends[0], `F${port}`)).port);
    lab.dp.reconcile(
      ports.map((port, i) => ({ vip, port, proto: 'UDP' as const, backends: [{ addr: backends[0], port: backendPorts[i], state: 'active' as const, clusterId: 0 }] })),
    );
    const before = lab.dp.programStats();
    const { replies } = await lab.client.udpOneSocket(4, ports.map((port) => ({ host: vip, port })));
    expect(replies.map((r) => [r.error, r.name, r.from])).toEqual(ports.map((port) => [undefined, `F${port}`, { address: vip, port }]));
    expect(lab.dp.programStats()).toEqual({ sockStateFailed: before.sockStateFailed, sockPeerReplaced: before.sockPeerReplaced + 1 });
  });
});
