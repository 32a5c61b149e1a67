/**
 * A backend pod's server: answers every TCP connection and every UDP datagram with its identity
 * (`<cluster>/<pod>`), on all addresses of its namespace.
 *   node dist/lab/workloads/echo-server.js --identity east/echo-1 --port 8080 \
 *     [--address 10.101.1.10 --drain-from http://10.99.0.3:9878,…]
 * On SIGTERM it keeps serving until no agent listed in --drain-from offers --address as an active
 * backend any more (its endpoint is already terminating; the update takes a few ms to reach every
 * map), bounded like a termination grace period, as a real server's graceful shutdown does.
 */
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { Command } from 'commander';
import type { ServiceStatus } from '../../lib/agent-api.js';

const DRAIN_LIMIT_MS = 5_000;
const DRAIN_POLL_MS = 20;

/**
 * Whether one agent's status lists `address` as an active backend. An agent that does not answer
 * may still send traffic here (a loaded node answers late), so it counts as offering until the
 * drain's limit: stopping early would leave its connections to an address that no longer exists.
 */
async function offers(statusUrl: string, address: string): Promise<boolean> {
  try {
    const res = await fetch(`${statusUrl}/status`, { signal: AbortSignal.timeout(1000) });
    const status = (await res.json()) as { services?: ServiceStatus[] };
    return (status.services ?? []).some((svc) =>
      svc.frontends.some((f) => f.backends.some((b) => b.state === 'active' && b.addr === address)),
    );
  } catch {
    return true;
  }
}

async function drain(agents: string[], address: string): Promise<void> {
  const deadline = Date.now() + DRAIN_LIMIT_MS;
  while (Date.now() < deadline) {
    const offered = await Promise.all(agents.map((url) => offers(url, address)));
    if (!offered.includes(true)) return;
    await delay(DRAIN_POLL_MS);
  }
}

function main(): void {
  const opts = new Command('echo-server')
    .requiredOption('--identity <cluster/pod>')
    .option('--port <port>', 'TCP and UDP port', '8080')
    .option('--address <ip>', "this pod's address, as the agents list it")
    .option('--drain-from <urls>', "agents' status API URLs, comma-separated (needs --address)")
    .parse(process.argv)
    .opts<{ identity: string; port: string; address?: string; drainFrom?: string }>();
  const port = Number(opts.port);
  const answer = `${opts.identity}\n`;
  const tcp = createServer((socket) => {
    socket.on('error', () => undefined); // a client that resets is not our problem
    socket.end(answer);
  });
  const udp = createSocket({ type: 'udp6', ipv6Only: false });
  udp.on('message', (_msg, peer) => udp.send(answer, peer.port, peer.address));
  let listening = 0;
  const ready = () => {
    if (++listening === 2) console.log(`echo-server ${opts.identity} listening on tcp+udp port ${port}`);
  };
  tcp.listen({ port, host: '::', ipv6Only: false }, ready);
  udp.bind(port, '::', ready);
  const stop = async () => {
    if (opts.drainFrom && opts.address) await drain(opts.drainFrom.split(','), opts.address);
    tcp.close();
    udp.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

main();
