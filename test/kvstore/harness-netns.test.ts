import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { EtcdHarness } from '../harness/etcd.js';

const NETNS = `kvstore-etcd-${process.pid}`;

/** Whether a TCP connect to 127.0.0.1:port succeeds from this (the root) namespace. */
const reachableHere = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });

describe('etcd harness inside a network namespace', () => {
  let etcd: EtcdHarness | undefined;

  beforeAll(() => {
    execFileSync('ip', ['netns', 'add', NETNS]);
    execFileSync('ip', ['-n', NETNS, 'link', 'set', 'lo', 'up']);
  });

  afterAll(async () => {
    await etcd?.stop();
    execFileSync('ip', ['netns', 'delete', NETNS]);
  });

  it('runs etcd in the namespace: healthy there, not listening in the root namespace', async () => {
    etcd = await EtcdHarness.start({ netns: NETNS });
    expect(await reachableHere(etcd.clientPort)).toBe(false);
    const inside = execFileSync('nsenter', [
      `--net=/var/run/netns/${NETNS}`,
      'ss',
      '-Htln',
      `sport = :${etcd.clientPort}`,
    ]);
    expect(inside.toString()).toContain(`127.0.0.1:${etcd.clientPort}`);
    await etcd.restart();
    expect(await reachableHere(etcd.clientPort)).toBe(false);
  });
});
