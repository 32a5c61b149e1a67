/**
 * A real etcd (the Debian etcd-server binary) for tests: TLS on, --client-cert-auth, free
 * loopback ports, a temporary data dir, certificates from lib/pki.ts. `kill()` is a SIGKILL,
 * `restart()` reuses the data dir and ports, `stop()` always cleans up.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCA, issueClientCert, issueServerCert, type CertifiedKey } from '../../lib/pki.js';
import type { EtcdClientConfig } from '../../lib/kvstore/etcd.js';

export interface EtcdHarnessOptions {
  /** Run inside this network namespace (`nsenter --net=/var/run/netns/<netns>`). */
  netns?: string;
  /** Address to listen on (default 127.0.0.1; inside a netns, an address of that netns). */
  host?: string;
  /** Fixed ports (default: free ports found on loopback). */
  clientPort?: number;
  peerPort?: number;
  /** An existing CA to sign the server certificate with (default: a fresh one). */
  ca?: CertifiedKey;
  etcdBinary?: string;
  startTimeoutMs?: number;
}

const ETCD_BINARY = '/usr/bin/etcd';
const ETCDCTL_BINARY = '/usr/bin/etcdctl';
const LOG_TAIL_LINES = 40;
/** Every harness still running, so a crashing test process does not leave etcd behind. */
const running = new Set<EtcdHarness>();
process.once('exit', () => running.forEach((h) => h.killNow()));

export class EtcdHarness {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private readonly logTail: string[] = [];
  private readonly clientCerts = new Map<string, CertifiedKey>();

  private constructor(
    readonly dataDir: string,
    private readonly workDir: string,
    readonly host: string,
    readonly clientPort: number,
    readonly peerPort: number,
    readonly ca: CertifiedKey,
    private readonly server: CertifiedKey,
    private readonly options: EtcdHarnessOptions,
  ) {}

  static start(options: EtcdHarnessOptions = {}): Promise<EtcdHarness> {
    const fixedPorts = options.clientPort !== undefined || options.peerPort !== undefined;
    return fixedPorts ? EtcdHarness.startOnce(options) : retryPortRace(() => EtcdHarness.startOnce(options));
  }

  private static async startOnce(options: EtcdHarnessOptions): Promise<EtcdHarness> {
    const host = options.host ?? '127.0.0.1';
    const workDir = await mkdtemp(join(tmpdir(), 'clustermesh-etcd-'));
    try {
      const ca = options.ca ?? (await createCA('clustermesh-test-etcd-ca'));
      const server = await issueServerCert(ca, {
        commonName: 'etcd',
        dnsNames: ['localhost'],
        ipAddresses: [host, '127.0.0.1'],
      });
      const clientPort = options.clientPort ?? (await freePort());
      const peerPort = options.peerPort ?? (await freePort());
      const harness = new EtcdHarness(
        join(workDir, 'data'),
        workDir,
        host,
        clientPort,
        peerPort,
        ca,
        server,
        options,
      );
      await harness.writeCertificates();
      running.add(harness);
      await harness.launch();
      return harness;
    } catch (err) {
      await rm(workDir, { recursive: true, force: true });
      throw err;
    }
  }

  get endpoint(): string {
    return `https://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.clientPort}`;
  }

  get endpoints(): string[] {
    return [this.endpoint];
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Client config for user `cn` (a certificate issued by this etcd's CA, cached per CN). */
  async clientConfig(cn = 'root', overrides: Partial<EtcdClientConfig> = {}): Promise<EtcdClientConfig> {
    return {
      endpoints: this.endpoints,
      caPem: this.ca.certPem,
      ...(await this.clientCert(cn)),
      dialTimeoutMs: 3_000,
      requestTimeoutMs: 3_000,
      ...overrides,
    };
  }

  async clientCert(cn: string): Promise<{ certPem: string; keyPem: string }> {
    let cert = this.clientCerts.get(cn);
    if (!cert) {
      cert = await issueClientCert(this.ca, { commonName: cn });
      this.clientCerts.set(cn, cert);
    }
    return cert;
  }

  /** SIGKILL: no graceful shutdown, as a crash or node loss would be. */
  async kill(): Promise<void> {
    this.killNow();
    await this.exited;
  }

  /** Starts etcd again on the same data dir and ports. */
  async restart(): Promise<void> {
    await this.kill();
    await this.launch();
  }

  /** Kills etcd and removes its data dir and certificates; safe to call more than once. */
  async stop(): Promise<void> {
    try {
      await this.kill();
    } finally {
      running.delete(this);
      await rm(this.workDir, { recursive: true, force: true });
    }
  }

  /** Recent etcd log lines, for failure messages. */
  logs(): string {
    return this.logTail.join('\n');
  }

  killNow(): void {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null)
      this.child.kill('SIGKILL');
  }

  private file(name: string): string {
    return join(this.workDir, name);
  }

  private async writeCertificates(): Promise<void> {
    await writeFile(this.file('ca.crt'), this.ca.certPem);
    await writeFile(this.file('server.crt'), this.server.certPem);
    await writeFile(this.file('server.key'), this.server.keyPem, { mode: 0o600 });
    const root = await this.clientCert('root');
    await writeFile(this.file('root.crt'), root.certPem);
    await writeFile(this.file('root.key'), root.keyPem, { mode: 0o600 });
  }

  private etcdArgs(): string[] {
    const h = this.host.includes(':') ? `[${this.host}]` : this.host;
    const peer = `http://${h}:${this.peerPort}`;
    return [
      '--name=test',
      `--data-dir=${this.dataDir}`,
      `--listen-client-urls=${this.endpoint}`,
      `--advertise-client-urls=${this.endpoint}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=test=${peer}`,
      `--cert-file=${this.file('server.crt')}`,
      `--key-file=${this.file('server.key')}`,
      `--trusted-ca-file=${this.file('ca.crt')}`,
      '--client-cert-auth',
      '--logger=zap',
      '--log-outputs=stderr',
      '--log-level=warn',
    ];
  }

  private async launch(): Promise<void> {
    const binary = this.options.etcdBinary ?? ETCD_BINARY;
    const [command, ...args] = this.inNetns([binary, ...this.etcdArgs()]);
    const child = spawn(command!, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => this.remember(chunk));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    await this.awaitReady(child);
  }

  private remember(chunk: string): void {
    this.logTail.push(...chunk.split('\n').filter(Boolean));
    this.logTail.splice(0, Math.max(0, this.logTail.length - LOG_TAIL_LINES));
  }

  /**
   * Polls `etcdctl endpoint health` (as root, inside the netns when there is one) until etcd has a
   * leader and serves, or the process dies.
   */
  private async awaitReady(child: ChildProcess): Promise<void> {
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 20_000);
    let delayMs = 20;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `etcd exited during start (code ${child.exitCode}, signal ${child.signalCode}):\n${this.logs()}`,
        );
      }
      if (await this.healthy()) return;
      if (Date.now() > deadline) {
        this.killNow();
        throw new Error(`etcd at ${this.endpoint} not healthy within the start timeout:\n${this.logs()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      delayMs = Math.min(delayMs * 2, 200);
    }
  }

  private healthy(): Promise<boolean> {
    const args = [
      `--endpoints=${this.endpoint}`,
      `--cacert=${this.file('ca.crt')}`,
      `--cert=${this.file('root.crt')}`,
      `--key=${this.file('root.key')}`,
      '--command-timeout=1s',
      'endpoint',
      'health',
    ];
    const [command, ...rest] = this.inNetns([ETCDCTL_BINARY, ...args]);
    return new Promise((resolve) => execFile(command!, rest, { timeout: 3_000 }, (err) => resolve(!err)));
  }

  private inNetns(argv: string[]): string[] {
    return this.options.netns ? ['nsenter', `--net=/var/run/netns/${this.options.netns}`, ...argv] : argv;
  }
}

/** Start attempts when a port picked free was taken before the program bound it. */
const PORT_RACE_ATTEMPTS = 3;

/**
 * Runs `start` again, with new free ports, when what it started found a port taken: freePort()
 * releases the port it finds, and another process (often a connection from the ephemeral range, or
 * a server started at the same moment) can take it first.
 */
export async function retryPortRace<T>(start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (attempt === PORT_RACE_ATTEMPTS || !/address already in use/.test(String(err))) throw err;
    }
  }
}

/**
 * A TCP port that was free a moment ago on loopback. The program binds it right after, so a race
 * with another process is possible; starts go through retryPortRace.
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
