/**
 * The built agent daemon (dist/agent/main.js) as a child process, and socket workers on loopback:
 * servers standing behind backend addresses, and a client inside the agent's cgroup.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Datapath } from '../../lib/datapath/index.js';
import { packageRoot } from '../../native/index.js';
import type { DatapathService } from '../../lib/datapath/types.js';
import { freePort } from '../harness/etcd.js';
import { waitFor, type TestNetns } from '../harness/netns.js';
import { SocketWorker } from '../datapath/worker-client.js';

// From the package root, so this works from source (jest) and from dist/ (benchmarks).
export const AGENT_MAIN = join(packageRoot, 'dist/agent/main.js');
const WORKER = join(packageRoot, 'test/datapath/socket-worker.mjs');
const BACKEND = join(packageRoot, 'test/agent/backend-server.mjs');
const LOG_TAIL = 60;

export interface AgentStatus {
  ready: boolean;
  remotes: { name: string; connected: boolean; ready: boolean }[];
  services: { namespace: string; name: string; programmed: boolean; frontends: { backends: { cluster: string; addr: string; state: string }[] }[] }[];
  datapath: { reconciles: number; updates: number; deletes: number };
}

export class AgentProcess {
  private readonly logTail: string[] = [];
  private readonly exited: Promise<number | null>;

  private constructor(
    private readonly child: ChildProcess,
    readonly healthUrl: string,
    readonly statusUrl: string,
  ) {
    const remember = (chunk: Buffer) => {
      this.logTail.push(...chunk.toString().split('\n').filter(Boolean));
      this.logTail.splice(0, Math.max(0, this.logTail.length - LOG_TAIL));
    };
    child.stdout?.on('data', remember);
    child.stderr?.on('data', remember);
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static async start(args: string[]): Promise<AgentProcess> {
    if (!existsSync(AGENT_MAIN)) throw new Error(`${AGENT_MAIN} is missing: run \`npm run build\` first`);
    const [healthPort, statusPort] = [await freePort(), await freePort()];
    const child = spawn(
      process.execPath,
      [AGENT_MAIN, ...args, '--health-addr', `127.0.0.1:${healthPort}`, '--status-addr', `127.0.0.1:${statusPort}`],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' } },
    );
    return new AgentProcess(child, `http://127.0.0.1:${healthPort}`, `http://127.0.0.1:${statusPort}`);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  logs(): string {
    return this.logTail.join('\n');
  }

  async waitReady(timeoutMs = 20_000): Promise<void> {
    await waitFor(
      async () => {
        if (this.child.exitCode !== null) throw new Error(`agent exited (${this.child.exitCode}):\n${this.logs()}`);
        return (await fetch(`${this.healthUrl}/readyz`).catch(() => null))?.status === 200;
      },
      timeoutMs,
      'the agent to be ready',
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${this.logs()}`);
    });
  }

  async status(): Promise<AgentStatus> {
    return (await (await fetch(`${this.statusUrl}/status`)).json()) as AgentStatus;
  }

  async get(path: string, base = this.statusUrl): Promise<{ status: number; body: string }> {
    const res = await fetch(`${base}${path}`);
    return { status: res.status, body: await res.text() };
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

function workerProcess(cgroupDir: string): ChildProcess {
  return spawn('sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroupDir, process.execPath, WORKER], { stdio: ['pipe', 'pipe', 'inherit'] });
}

/** A client socket worker inside `cgroupDir` (the agent's programs apply to it). */
export function startClient(cgroupDir: string): { worker: SocketWorker; process: ChildProcess } {
  const child = workerProcess(cgroupDir);
  return { worker: new SocketWorker(child), process: child };
}

export interface Backend {
  process: ChildProcess;
  port: number;
}

/** A server process answering with `name` on `host` (outside any test cgroup). */
export async function startBackend(host: string, name: string, netns?: TestNetns): Promise<Backend> {
  const child = netns
    ? netns.spawn(process.execPath, [BACKEND, host, name])
    : spawn(process.execPath, [BACKEND, host, name], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
    child.once('exit', (code) => reject(new Error(`backend ${name} exited (${code}) before listening`)));
  });
  return { process: child, port };
}

/** Kills a child and waits until it is gone (so its cgroup can be removed). */
export async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await gone;
}

/** The services in the pinned maps, read with a second handle on them. */
export async function dumpMaps(pinDir: string): Promise<DatapathService[]> {
  const dp = await Datapath.open({ pinDir });
  try {
    return dp.dump();
  } finally {
    dp.close();
  }
}
