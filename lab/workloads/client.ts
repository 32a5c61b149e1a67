/**
 * A client pod's load: a bounded number of requests per second to a VIP, one JSON line per request
 * on stdout: {"t": ms since start, "answer": "<cluster>/<pod>" | null, "error": string | null}.
 *   node dist/lab/workloads/client.js --target 10.111.0.10:80 --rate 10 --duration 30 [--udp]
 */
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { Command } from 'commander';

const REQUEST_TIMEOUT_MS = 400;

export interface RequestRecord {
  t: number;
  answer: string | null;
  error: string | null;
}

function tcpRequest(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    const socket = connect({ host, port, timeout: REQUEST_TIMEOUT_MS });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('end', () => (data.trim() ? resolve(data.trim()) : reject(new Error('empty answer'))));
    socket.on('timeout', () => socket.destroy(new Error('timeout')));
    socket.on('error', (err: NodeJS.ErrnoException) => reject(new Error(err.code ?? err.message)));
  });
}

function udpRequest(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const timer = setTimeout(() => finish(new Error('timeout')), REQUEST_TIMEOUT_MS);
    const finish = (err: Error | null, answer?: string) => {
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else resolve(answer!);
    };
    socket.on('message', (msg) => finish(null, msg.toString().trim()));
    socket.on('error', (err: NodeJS.ErrnoException) => finish(new Error(err.code ?? err.message)));
    socket.connect(port, host, () => socket.send('?'));
  });
}

async function main(): Promise<void> {
  const opts = new Command('client')
    .requiredOption('--target <ip:port>')
    .option('--rate <n>', 'requests per second (1..100)', '10')
    .option('--duration <s>', 'seconds (1..600)', '30')
    .option('--udp', 'UDP instead of TCP')
    .parse(process.argv)
    .opts<{ target: string; rate: string; duration: string; udp?: boolean }>();
  const rate = Math.min(100, Math.max(1, Number(opts.rate)));
  const total = rate * Math.min(600, Math.max(1, Number(opts.duration)));
  const sep = opts.target.lastIndexOf(':');
  const host = opts.target.slice(0, sep).replace(/^\[|\]$/g, '');
  const port = Number(opts.target.slice(sep + 1));
  const send = opts.udp ? udpRequest : tcpRequest;
  const start = Date.now();
  let stopping = false;
  process.once('SIGTERM', () => (stopping = true));
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total && !stopping; i++) {
    const due = start + (i * 1000) / rate;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - Date.now())));
    const t = Date.now() - start;
    pending.push(
      send(host, port).then(
        (answer) => void console.log(JSON.stringify({ t, answer, error: null } satisfies RequestRecord)),
        (err: Error) => void console.log(JSON.stringify({ t, answer: null, error: err.message } satisfies RequestRecord)),
      ),
    );
  }
  await Promise.all(pending);
}

if (process.argv[1]?.endsWith('client.js')) void main();
