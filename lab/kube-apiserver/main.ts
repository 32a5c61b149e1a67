/**
 * Runnable entry of the lab's Kubernetes API server, spawned by the lab inside a namespace:
 *   node dist/lab/kube-apiserver/main.js --listen 10.99.0.10:6443 --kubeconfig-out FILE --context NAME
 * Prints one line when ready and exits 0 on SIGTERM/SIGINT.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { startKubeApiServer } from './server.js';

interface ListenAddress {
  host: string;
  port: number;
}

/** `host:port` or `[v6]:port`. */
function parseListen(value: string): ListenAddress {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new InvalidArgumentError(`"${value}" is not host:port (IPv6 as [addr]:port)`);
  return { host: m[1] ?? m[2], port };
}

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`"${value}" is not a positive integer`);
  return n;
}

function readPem(path: string | undefined, what: string): string | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read the ${what} ${path}: ${(error as Error).message}`);
  }
}

interface Flags {
  listen: ListenAddress;
  kubeconfigOut?: string;
  context: string;
  token?: string;
  historyWindow?: number;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
}

function tlsFrom(flags: Flags) {
  if (!flags.tlsCert && !flags.tlsKey) return undefined;
  if (!flags.tlsCert || !flags.tlsKey)
    throw new Error('--tls-cert and --tls-key go together: give both or neither');
  return {
    cert: readPem(flags.tlsCert, 'TLS certificate') as string,
    key: readPem(flags.tlsKey, 'TLS key') as string,
    ca: readPem(flags.tlsCa, 'CA certificate'),
  };
}

async function main(argv: string[]): Promise<void> {
  const flags = new Command('kube-apiserver')
    .description("the lab's Kubernetes API server stand-in (in memory)")
    .option('--listen <host:port>', 'address to serve on', parseListen, { host: '127.0.0.1', port: 6443 })
    .option('--kubeconfig-out <file>', 'write a kubeconfig for this server here')
    .option('--context <name>', 'cluster/user/context name in the kubeconfig', 'lab')
    .option('--token <token>', 'require this bearer token')
    .option(
      '--history-window <events>',
      'events kept for watch resumption (older: 410 Expired)',
      positiveInteger,
    )
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM)')
    .option('--tls-key <file>', 'private key of --tls-cert (PEM)')
    .option('--tls-ca <file>', 'CA certificate to put in the kubeconfig (PEM)')
    .parse(argv)
    .opts<Flags>();
  const server = await startKubeApiServer({
    host: flags.listen.host,
    port: flags.listen.port,
    token: flags.token,
    historyWindow: flags.historyWindow,
    tls: tlsFrom(flags),
  });
  if (flags.kubeconfigOut)
    writeFileSync(flags.kubeconfigOut, server.kubeconfig(flags.context), { mode: 0o600 });
  const stop = () => void server.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  console.log(
    `kube-apiserver ready url=${server.url} context=${flags.context}${flags.kubeconfigOut ? ` kubeconfig=${flags.kubeconfigOut}` : ''}`,
  );
}

main(process.argv).catch((error: Error) => {
  console.error(`kube-apiserver: ${error.message}`);
  process.exit(1);
});
