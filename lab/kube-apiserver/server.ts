/**
 * The lab's Kubernetes API server stand-in: an in-memory store behind the real HTTP protocol,
 * enough for unmodified @kubernetes/client-node and kubectl. Only the lab (and tests) use it.
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Handler } from './handler.js';
import { renderKubeconfig } from './kubeconfig.js';
import { Store } from './store.js';

export interface KubeApiServerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  /** Events kept for watches resuming from a version; older versions get 410 Expired. Default 10,000. */
  historyWindow?: number;
  /** When set, every API request must carry `Authorization: Bearer <token>`. */
  token?: string;
  /** Serve HTTPS with this certificate and key (PEM); `ca` goes into the kubeconfig. */
  tls?: { cert: string; key: string; ca?: string };
  /** Interval of BOOKMARK events on watches that allow them. Default 60 s, as the real server. */
  bookmarkIntervalMs?: number;
  /** Server-side end of a watch that asks for no timeout. Default 1800 s. */
  defaultWatchTimeoutSeconds?: number;
}

export interface KubeApiServer {
  url: string;
  /** Direct in-process access (the lab's kubelet role): get/list/create/update/apply/delete/watch. */
  store: Store;
  /** A kubeconfig (YAML) whose current context `contextName` points here. */
  kubeconfig(contextName?: string): string;
  /** Ends every open watch stream, as an API server restart would; clients reconnect. */
  dropWatches(): void;
  close(): Promise<void>;
}

function urlHost(address: AddressInfo, requestedHost: string): string {
  const wildcard = requestedHost === '0.0.0.0' || requestedHost === '::';
  const host = wildcard ? (address.family === 'IPv6' ? '::1' : '127.0.0.1') : address.address;
  return host.includes(':') ? `[${host}]` : host;
}

async function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server.address() as AddressInfo;
}

export async function startKubeApiServer(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  const host = options.host ?? '127.0.0.1';
  const store = new Store({ historyWindow: options.historyWindow });
  const openWatches = new Set<() => void>();
  let serverAddress = '';
  const handler = new Handler({
    store,
    serverAddress: () => serverAddress,
    token: options.token,
    bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60_000,
    defaultWatchTimeoutSeconds: options.defaultWatchTimeoutSeconds ?? 1800,
    trackWatch: (stop) => {
      openWatches.add(stop);
      return () => openWatches.delete(stop);
    },
  });
  const serve = (req: IncomingMessage, res: ServerResponse) => void handler.handle(req, res);
  const server = options.tls
    ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, serve)
    : createHttpServer(serve);
  const address = await listen(server, host, options.port ?? 0);
  serverAddress = `${urlHost(address, host)}:${address.port}`;
  const url = `${options.tls ? 'https' : 'http'}://${serverAddress}`;
  const dropWatches = () => [...openWatches].forEach((stop) => stop());
  return {
    url,
    store,
    kubeconfig: (contextName = 'lab') =>
      renderKubeconfig({ url, contextName, token: options.token, caCert: options.tls?.ca }),
    dropWatches,
    close: async () => {
      dropWatches();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
