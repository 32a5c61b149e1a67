/** Drives test/datapath/socket-worker.mjs in a namespace: one JSON request/reply per line. */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { TestNetns } from '../harness/netns.js';

const WORKER = fileURLToPath(new URL('./socket-worker.mjs', import.meta.url));

export interface Reached {
  reached: Record<string, number>;
  errors: Record<string, number>;
}

export interface TcpOnce {
  name?: string;
  peer?: { address: string; port: number };
  error?: string;
}

export interface UdpReply {
  name?: string;
  from?: { address: string; port: number };
  error?: string;
}

export class SocketWorker {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly ready: Promise<void>;

  constructor(private readonly child: ChildProcess) {
    let markReady!: () => void;
    this.ready = new Promise((resolve) => (markReady = resolve));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const message = JSON.parse(line) as { ready?: boolean; id?: number; result?: unknown; error?: string };
      if (message.ready) return markReady();
      const waiter = this.pending.get(message.id!);
      this.pending.delete(message.id!);
      if (message.error !== undefined) waiter?.reject(new Error(message.error));
      else waiter?.resolve(message.result);
    });
    child.on('exit', (code) => {
      for (const waiter of this.pending.values()) waiter.reject(new Error(`socket worker exited (${code})`));
      this.pending.clear();
    });
  }

  static start(ns: TestNetns, cgroupDir?: string): SocketWorker {
    return new SocketWorker(ns.spawn(process.execPath, [WORKER], { cgroupDir }));
  }

  async call<T>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    await this.ready;
    const id = this.nextId++;
    const reply = new Promise<T>((resolve, reject) => this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject }));
    this.child.stdin!.write(`${JSON.stringify({ id, op, args })}\n`);
    return reply;
  }

  listenTcp(host: string, name: string): Promise<{ port: number }> {
    return this.call('listenTcp', { host, name });
  }

  listenUdp(host: string, name: string): Promise<{ port: number }> {
    return this.call('listenUdp', { host, name });
  }

  /** `count` connects, `concurrency` at a time (default one after another). */
  tcpConnects(host: string, port: number, count: number, concurrency = 1): Promise<Reached> {
    return this.call('tcpConnects', { host, port, count, concurrency });
  }

  tcpPeer(host: string, port: number): Promise<TcpOnce> {
    return this.call('tcpPeer', { host, port });
  }

  udpExchanges(host: string, port: number, sockets: number, messages: number): Promise<{ perSocket: UdpReply[][] }> {
    return this.call('udpExchanges', { host, port, sockets, messages });
  }

  /** One unconnected socket of `family` sends to each target in turn. */
  udpOneSocket(family: 4 | 6, targets: { host: string; port: number }[]): Promise<{ replies: UdpReply[] }> {
    return this.call('udpOneSocket', { family, targets });
  }

  /**
   * A long-lived UDP socket, connected to `peer` if given: exchange() sends one datagram (to
   * host:port, or without an address when connected) and awaits the reply.
   */
  async udpOpen(
    family: 4 | 6,
    peer?: { host: string; port: number },
  ): Promise<{ exchange(host?: string, port?: number): Promise<UdpReply>; close(): Promise<void> }> {
    const { id } = await this.call<{ id: number }>('udpOpen', { family, peer });
    return {
      exchange: (host, port) => this.call<UdpReply>('udpExchange', { id, host, port }),
      close: async () => void (await this.call('udpClose', { id })),
    };
  }
}
