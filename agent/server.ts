/**
 * The agent's two HTTP endpoints: health and metrics on `--health-addr` (/healthz, /readyz,
 * /metrics) and the local status API for the CLI on `--status-addr` (/status, /identity?ip=).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { UserError } from '../lib/errors.js';
import { metricsExposition } from '../lib/metrics.js';
import { isIpAddress } from '../lib/net/ip.js';
import type { IdentityRecord } from '../lib/agent-api.js';

export interface HostPort {
  host: string;
  port: number;
}

/** "host:port" or "[v6]:port"; a one-line error naming the flag otherwise. */
export function parseHostPort(text: string, flag: string): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UserError(`${flag} "${text}" is not host:port (e.g. 127.0.0.1:9876 or [::1]:9876)`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export interface ListeningServer {
  url: string;
  close(): Promise<void>;
}

type Route = (url: URL) => Promise<{ status: number; type: string; body: string }> | { status: number; type: string; body: string };

const json = (status: number, value: unknown) => ({ status, type: 'application/json', body: `${JSON.stringify(value, null, 2)}\n` });
const text = (status: number, body: string) => ({ status, type: 'text/plain; charset=utf-8', body: `${body}\n` });

async function listen(addr: HostPort, routes: Record<string, Route>): Promise<ListeningServer> {
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://agent');
      const route = req.method === 'GET' ? routes[url.pathname] : undefined;
      const reply = route ? await route(url) : text(404, `no ${req.method} ${url.pathname} here`);
      res.writeHead(reply.status, { 'content-type': reply.type });
      res.end(reply.body);
    })().catch((err: unknown) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`${String(err)}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new UserError(`cannot listen on ${addr.host}:${addr.port} (${err.code ?? err.message}): pick a free address`)),
    );
    server.listen(addr.port, addr.host, () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    url: `http://${address.includes(':') ? `[${address}]` : address}:${port}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

export interface HealthEndpoints {
  ready(): boolean;
  /** why not ready, for the /readyz body */
  notReadyReason(): string;
  metrics: Registry;
}

export function serveHealth(addr: HostPort, h: HealthEndpoints): Promise<ListeningServer> {
  return listen(addr, {
    '/healthz': () => text(200, 'ok'),
    '/readyz': () => (h.ready() ? text(200, 'ready') : text(503, `not ready: ${h.notReadyReason()}`)),
    '/metrics': async () => {
      const { contentType, body } = await metricsExposition(h.metrics);
      return { status: 200, type: contentType, body };
    },
  });
}

export interface StatusEndpoints {
  status(): unknown;
  identity(ip: string): IdentityRecord | null;
}

export function serveStatus(addr: HostPort, s: StatusEndpoints): Promise<ListeningServer> {
  return listen(addr, {
    '/status': () => json(200, s.status()),
    '/identity': (url) => {
      const ip = url.searchParams.get('ip');
      if (!ip) return json(400, { error: 'pass ?ip=ADDRESS' });
      if (!isIpAddress(ip)) return json(400, { error: `"${ip}" is not an IPv4 or IPv6 address` });
      const record = s.identity(ip);
      return record ? json(200, record) : json(404, { error: `no remote cluster claims ${ip}` });
    },
  });
}
