/** `/healthz` (the process serves), `/readyz` (initial sync done) and `/metrics` on --health-addr. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { metricsExposition } from '../lib/metrics.js';
import type { HostPort } from './config.js';

export interface HealthSources {
  registry: Registry;
  /** null when ready, otherwise what is still pending (one line) */
  notReadyReason: () => string | null;
}

export interface HealthServer {
  /** `http://host:port` as bound (port 0 resolved) */
  url: string;
  close(): Promise<void>;
}

export async function startHealthServer(addr: HostPort, sources: HealthSources): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const reply = (status: number, body: string, contentType = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': contentType }).end(body);
    };
    if (path === '/healthz') return reply(200, 'ok\n');
    if (path === '/readyz') {
      const pending = sources.notReadyReason();
      return pending === null ? reply(200, 'ok\n') : reply(503, `not ready: ${pending}\n`);
    }
    if (path === '/metrics') {
      metricsExposition(sources.registry).then(
        ({ contentType, body }) => reply(200, body, contentType),
        (err: Error) => reply(500, `${err.message}\n`),
      );
      return;
    }
    reply(404, 'not found: try /healthz, /readyz or /metrics\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(`cannot listen on --health-addr ${addr.host}:${addr.port}: ${err.code ?? err.message}`),
      ),
    );
    server.listen(addr.port, addr.host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const host = bound.address.includes(':') ? `[${bound.address}]` : bound.address;
  return {
    url: `http://${host}:${bound.port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
