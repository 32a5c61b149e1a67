/**
 * Network namespaces for tests. Processes enter with `nsenter --net=…` (which keeps the host's
 * /sys, so the cgroup2 mount stays visible; `ip netns exec` would remount it away), optionally
 * after joining a cgroup, so cgroup socket hooks apply to them.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

let created = 0;

/** Polls `condition` until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface SpawnInNetnsOptions {
  /** join this cgroup v2 directory before entering the namespace */
  cgroupDir?: string;
  env?: NodeJS.ProcessEnv;
}

export class TestNetns {
  private readonly children = new Set<ChildProcess>();

  private constructor(readonly name: string) {}

  /** `<prefix>-<pid>-<n>`, with lo up. */
  static create(prefix: string): TestNetns {
    const ns = new TestNetns(`${prefix}-${process.pid}-${++created}`);
    execFileSync('ip', ['netns', 'add', ns.name]);
    ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  get path(): string {
    return `/var/run/netns/${this.name}`;
  }

  /** Runs a command inside the namespace and returns its stdout. */
  exec(command: string, ...args: string[]): string {
    return execFileSync('nsenter', [`--net=${this.path}`, command, ...args], { encoding: 'utf8' });
  }

  ip(...args: string[]): string {
    return this.exec('ip', ...args);
  }

  /** Adds an address (IPv6 without duplicate address detection, so it is usable at once). */
  addAddress(cidr: string, dev = 'lo'): void {
    if (cidr.includes(':')) this.ip('-6', 'addr', 'add', cidr, 'dev', dev, 'nodad');
    else this.ip('addr', 'add', cidr, 'dev', dev);
  }

  /** Starts a long-running process in the namespace; destroy() kills it if it is still running. */
  spawn(command: string, args: string[], options: SpawnInNetnsOptions = {}): ChildProcess {
    const nsenter = ['nsenter', `--net=${this.path}`, command, ...args];
    const child = options.cgroupDir
      ? spawn('sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', options.cgroupDir, ...nsenter], {
          env: options.env ?? process.env,
          stdio: ['pipe', 'pipe', 'inherit'],
        })
      : spawn(nsenter[0], nsenter.slice(1), { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'inherit'] });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  /** Kills what spawn() started, then deletes the namespace. */
  async destroy(): Promise<void> {
    for (const child of this.children) child.kill('SIGKILL');
    await waitFor(() => this.children.size === 0, 5000, `processes in ${this.name} to exit`);
    if (existsSync(this.path)) execFileSync('ip', ['netns', 'delete', this.name]);
  }
}
