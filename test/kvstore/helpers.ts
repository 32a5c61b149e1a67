/** Test helpers: polling with a deadline, and a TCP proxy whose link the test can cut. */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { KEEPALIVE_TIME_MS, KEEPALIVE_TIMEOUT_MS } from '../../lib/kvstore/etcd.js';

/** How long a client takes at most to notice a silenced proxy: its keepalive ping unanswered, with slack. */
export const KEEPALIVE_NOTICE_MS = KEEPALIVE_TIME_MS + KEEPALIVE_TIMEOUT_MS + 4_000;

/** Polls `condition` until it holds; fails with `what` after `timeoutMs`. */
export async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delayMs = 10;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    delayMs = Math.min(delayMs * 2, 100);
  }
}

/**
 * Forwards 127.0.0.1:<port> to a target. `cut()` drops every connection and refuses new ones
 * (the client sees etcd vanish while etcd stays up); `silence()` stops forwarding without a reset;
 * `restore()` forwards again on the same port.
 */
export class CuttableProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private silent = false;
  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
    public port: number,
  ) {}

  static async start(targetHost: string, targetPort: number): Promise<CuttableProxy> {
    const proxy = new CuttableProxy(targetHost, targetPort, 0);
    await proxy.restore();
    return proxy;
  }

  get endpoint(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  async restore(): Promise<void> {
    if (this.server && this.silent) {
      this.silent = false;
      this.sockets.forEach((s) => s.destroy());
      return;
    }
    const server = createServer((inbound) => {
      if (this.silent) {
        inbound.pause(); // accepted, never answered: a TLS handshake that hangs
        this.sockets.add(inbound);
        inbound.on('close', () => this.sockets.delete(inbound));
        inbound.on('error', () => undefined);
        return;
      }
      const outbound = connect(this.targetPort, this.targetHost);
      for (const s of [inbound, outbound]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {
          inbound.destroy();
          outbound.destroy();
        });
      }
      inbound.pipe(outbound).pipe(inbound);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    this.port = typeof address === 'object' && address ? address.port : this.port;
    this.server = server;
  }

  /**
   * Every connection stays open and new ones are accepted, but nothing is forwarded any more: a
   * pulled cable, seen only by keepalives and timeouts. `restore()` drops them and forwards again.
   */
  silence(): void {
    this.silent = true;
    for (const s of this.sockets) {
      s.unpipe();
      s.pause();
    }
  }

  async cut(): Promise<void> {
    this.silent = false;
    const server = this.server;
    this.server = null;
    this.sockets.forEach((s) => s.destroy());
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  close(): Promise<void> {
    return this.cut();
  }
}
