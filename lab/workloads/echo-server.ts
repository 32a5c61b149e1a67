/**
 * A backend pod's server: answers every TCP connection and every UDP datagram with its identity
 * (`<cluster>/<pod>`), on all addresses of its namespace.
 *   node dist/lab/workloads/echo-server.js --identity east/echo-1 --port 8080
 */
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { Command } from 'commander';

function main(): void {
  const opts = new Command('echo-server')
    .requiredOption('--identity <cluster/pod>')
    .option('--port <port>', 'TCP and UDP port', '8080')
    .parse(process.argv)
    .opts<{ identity: string; port: string }>();
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
  const stop = () => {
    tcp.close();
    udp.close();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main();
