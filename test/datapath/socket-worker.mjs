// A socket worker that runs inside a test network namespace (and, as a client, inside the
// test cgroup). It reads one JSON request per stdin line and writes one JSON reply per line.
// Servers answer every TCP connection and UDP datagram with their name, so a client learns
// which backend it reached.
import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';
import process from 'node:process';
import { createInterface } from 'node:readline';
import { clearTimeout, setTimeout } from 'node:timers';

const REPLY_TIMEOUT_MS = 2000;
const MAX_LOOP_ITERATIONS = 200000;
const keep = [];

function listenTcp({ host, name }) {
  // Health probes close with a reset; that must not crash the worker.
  const server = createServer((socket) => socket.on('error', () => socket.destroy()).end(`${name}\n`));
  keep.push(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve({ port: server.address().port }));
  });
}

function listenUdp({ host, name }) {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  socket.on('message', (_msg, rinfo) => socket.send(name, rinfo.port, rinfo.address));
  keep.push(socket);
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, host, () => resolve({ port: socket.address().port }));
  });
}

/** Connects, reads the server's name, and reports what getpeername said about the peer. */
function tcpOnce(host, port) {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let data = '';
    let peer;
    socket.setTimeout(REPLY_TIMEOUT_MS, () => socket.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    socket.on('connect', () => (peer = { address: socket.remoteAddress, port: socket.remotePort }));
    socket.on('data', (chunk) => (data += chunk));
    socket.on('end', () => resolve({ name: data.trim(), peer }));
    socket.on('error', (error) => resolve({ error: error.code ?? error.message }));
  });
}

function count(tally, key) {
  tally[key] = (tally[key] ?? 0) + 1;
}

/** `n` connections one after another on each of `concurrency` lanes. */
async function tcpConnects({ host, port, count: n, concurrency = 1 }) {
  const reached = {};
  const errors = {};
  let started = 0;
  const lane = async () => {
    while (started < n) {
      started++;
      const result = await tcpOnce(host, port);
      if (result.error) count(errors, result.error);
      else count(reached, result.name);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, lane));
  return { reached, errors };
}

async function tcpPeer({ host, port }) {
  return tcpOnce(host, port);
}

/** Sends one datagram (to host:port, or to the peer of a connected socket) and awaits the reply. */
function udpRequest(socket, host, port) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.off('message', onMessage);
      resolve({ error: 'ETIMEDOUT' });
    }, REPLY_TIMEOUT_MS);
    function onMessage(msg, rinfo) {
      clearTimeout(timer);
      resolve({ name: msg.toString(), from: { address: rinfo.address, port: rinfo.port } });
    }
    socket.once('message', onMessage);
    const sent = (error) => {
      if (!error) return;
      clearTimeout(timer);
      socket.off('message', onMessage);
      resolve({ error: error.code ?? error.message });
    };
    if (host === undefined) socket.send('hello', sent);
    else socket.send('hello', port, host, sent);
  });
}

/** `sockets` unconnected UDP sockets, each sending `messages` datagrams one after another. */
async function udpExchanges({ host, port, sockets, messages }) {
  const perSocket = [];
  for (let s = 0; s < sockets; s++) {
    const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    await new Promise((resolve) => socket.bind(0, resolve));
    const replies = [];
    for (let m = 0; m < messages; m++) replies.push(await udpRequest(socket, host, port));
    socket.close();
    perSocket.push(replies);
  }
  return { perSocket };
}

/** One unconnected socket sends one datagram to each target in turn (family: of the socket). */
async function udpOneSocket({ targets, family }) {
  const socket = createSocket(family === 6 ? 'udp6' : 'udp4');
  await new Promise((resolve) => socket.bind(0, resolve));
  const replies = [];
  for (const { host, port } of targets) replies.push(await udpRequest(socket, host, port));
  socket.close();
  return { replies };
}

/** Long-lived UDP sockets, kept open between exchanges until udpClose; connected when `peer` is given. */
const held = new Map();
let nextHeld = 1;

async function udpOpen({ family, peer }) {
  const socket = createSocket(family === 6 ? 'udp6' : 'udp4');
  await new Promise((resolve) => socket.bind(0, resolve));
  if (peer) await new Promise((resolve, reject) => socket.connect(peer.port, peer.host, (error) => (error ? reject(error) : resolve())));
  held.set(nextHeld, socket);
  return { id: nextHeld++ };
}

function udpExchange({ id, host, port }) {
  return udpRequest(held.get(id), host, port);
}

function udpClose({ id }) {
  held.get(id)?.close();
  held.delete(id);
  return {};
}

let loop;

/** Connects over and over until loopStop (bounded), counting where each connect went. */
function loopStart({ host, port }) {
  loop = { reached: {}, errors: {}, iterations: 0, stop: false };
  const state = loop;
  state.done = (async () => {
    while (!state.stop && state.iterations < MAX_LOOP_ITERATIONS) {
      const result = await tcpOnce(host, port);
      state.iterations++;
      if (result.error) count(state.errors, result.error);
      else count(state.reached, result.name);
    }
  })();
  return {};
}

async function loopStop() {
  loop.stop = true;
  await loop.done;
  return { reached: loop.reached, errors: loop.errors, iterations: loop.iterations };
}

function loopProgress() {
  return { iterations: loop.iterations, errors: loop.errors };
}

const handlers = {
  listenTcp, listenUdp, tcpConnects, tcpPeer, udpExchanges, udpOneSocket, udpOpen, udpExchange, udpClose, loopStart, loopStop, loopProgress,
};

const lines = createInterface({ input: process.stdin });
lines.on('line', async (line) => {
  const { id, op, args } = JSON.parse(line);
  try {
    const result = await handlers[op](args);
    process.stdout.write(`${JSON.stringify({ id, result })}\n`);
  } catch (error) {
    process.stdout.write(`${JSON.stringify({ id, error: String(error?.message ?? error) })}\n`);
  }
});
lines.on('close', () => process.exit(0));
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
