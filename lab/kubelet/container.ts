/**
 * One container of a pod as a process: started in the pod's network namespace (or the node's,
 * for hostNetwork) and the node's cgroup (so the datapath's cgroup programs see its sockets), in a
 * mount namespace of its own with the pod's volumes; probed; restarted with backoff; stopped
 * gracefully. The decisions are lab/kubelet/{probes,restart,mounts}.ts; this is their I/O.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, realpathSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { constants } from 'node:os';
import { join } from 'node:path';
import type { V1Container, V1LifecycleHandler, V1Probe } from '@kubernetes/client-node';
import type { Lab } from '../topology/apply.js';
import { mountScript, planMounts } from './mounts.js';
import type { ProcessSpecResult } from './pods.js';
import {
  type ProbeAction,
  type ProbeState,
  initialProbeState,
  nextProbeState,
  probeAction,
  probeTiming,
} from './probes.js';
import { nextQuickRestarts, restartDelayMs, shouldRestart } from './restart.js';
import type { ContainerRecord, Terminated } from './status.js';
import { PendingTimers } from './timers.js';

export interface ContainerHost {
  lab: Lab;
  /** `node` or `node/pod`, for Lab.spawnIn */
  target(): string;
  /** this container's directory (log, mount scratch) */
  dir: string;
  /** the address probes use by default */
  podIP(): string;
  restartPolicy: string;
  /** the pod's terminationGracePeriodSeconds, for a liveness kill */
  terminationGraceMs: number;
  /** the process to start, computed at each start (env and volumes may have changed) */
  spec(): ProcessSpecResult;
  changed(): void;
  event(type: 'Normal' | 'Warning', reason: string, message: string): void;
}

const SIGNALS = constants.signals as Record<string, number>;

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  return code ?? 128 + (signal ? (SIGNALS[signal] ?? 0) : 0);
}

function lastLine(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  return lines[lines.length - 1]?.slice(0, 300) || undefined;
}

export class Container {
  readonly record: ContainerRecord;
  private child: ChildProcess | undefined;
  private startedAt = 0;
  private quickRestarts = 0;
  private readiness: ProbeState | undefined;
  private liveness: ProbeState | undefined;
  private startup: ProbeState | undefined;
  private readonly timers = new PendingTimers();
  private stopping = false;
  private exited: Promise<void> = Promise.resolve();
  /** resolves with the exit code once the container has run to its end (init containers) */
  private finishedListeners: Array<(exitCode: number) => void> = [];

  constructor(
    readonly spec: V1Container,
    private readonly host: ContainerHost,
    private readonly isInit: boolean,
  ) {
    this.record = {
      name: spec.name,
      image: spec.image ?? '',
      state: { waiting: { reason: 'ContainerCreating' } },
      restartCount: 0,
      ready: false,
      started: false,
    };
  }

  get log(): string {
    return join(this.host.dir, 'log');
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Resolves with the exit code of a run that will not be restarted (or is an init container's). */
  finished(): Promise<number> {
    return new Promise((resolve) => this.finishedListeners.push(resolve));
  }

  /** Starts the process, or leaves it Waiting with the reason (retried by `retry`). */
  start(): void {
    if (this.stopping || this.child) return;
    const spec = this.host.spec();
    if (!spec.ok) {
      this.wait(spec.reason, spec.message);
      return;
    }
    const scratch = join(this.host.dir, 'mnt');
    mkdirSync(scratch, { recursive: true });
    const plan = planMounts(spec.value.mounts, { exists: existsSync, realpath: realpathSync });
    if (!plan.ok) {
      this.wait('CreateContainerConfigError', plan.message);
      return;
    }
    const fd = openSync(this.log, 'a');
    let child: ChildProcess;
    try {
      const script = mountScript(plan.value, scratch, spec.value.workingDir);
      // setsid: the container is its own process group, so a signal reaches what it forked too
      child = this.host.lab.spawnIn(
        this.host.target(),
        'setsid',
        ['unshare', '--mount', '--propagation', 'slave', '--', 'sh', '-ec', script, this.spec.name, ...spec.value.argv],
        { env: spec.value.env, stdio: ['ignore', fd, fd] },
      );
    } finally {
      closeSync(fd);
    }
    this.child = child;
    this.startedAt = Date.now();
    const startedAt = new Date(this.startedAt).toISOString();
    this.record.state = { running: { startedAt } };
    this.record.pid = child.pid;
    this.record.ready = false;
    this.startProbes();
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(this.onExit(child, code, signal, startedAt))));
    this.host.event('Normal', 'Started', `Started container ${this.spec.name}`);
    this.host.changed();
  }

  /** A Waiting container whose reason may have gone (a Secret created, a token issued) tries again. */
  retry(): void {
    if (!this.child && !this.stopping && 'waiting' in this.record.state && this.record.state.waiting.reason !== 'CrashLoopBackOff') {
      this.start();
    }
  }

  private wait(reason: string, message: string): void {
    const before = this.record.state;
    this.record.state = { waiting: { reason, message } };
    if (!('waiting' in before) || before.waiting.message !== message) {
      this.host.event('Warning', reason === 'ImageNotRunnable' ? 'Failed' : 'FailedCreate', `${reason}: ${message}`);
      this.host.changed();
    }
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null, startedAt: string): void {
    if (this.child !== child) return;
    this.child = undefined;
    this.timers.clear();
    const exitCode = exitCodeOf(code, signal);
    const terminated: Terminated = {
      exitCode,
      ...(signal ? { signal: SIGNALS[signal] } : {}),
      reason: exitCode === 0 ? 'Completed' : 'Error',
      ...(exitCode !== 0 && lastLine(this.log) ? { message: lastLine(this.log) } : {}),
      startedAt,
      finishedAt: new Date().toISOString(),
    };
    this.record.state = { terminated };
    this.record.ready = false;
    this.record.started = false;
    const ranFor = Date.now() - this.startedAt;
    const again = !this.stopping && shouldRestart(this.isInit && this.host.restartPolicy === 'Always' ? 'OnFailure' : this.host.restartPolicy, exitCode);
    if (!again) {
      this.host.changed();
      this.finishedListeners.splice(0).forEach((l) => l(exitCode));
      return;
    }
    this.quickRestarts = nextQuickRestarts(this.quickRestarts, ranFor);
    const delay = restartDelayMs(this.quickRestarts);
    this.record.lastTerminated = terminated;
    this.record.restartCount++;
    this.record.state = {
      waiting: { reason: 'CrashLoopBackOff', message: `back-off ${Math.round(delay / 1000)}s restarting failed container=${this.spec.name}` },
    };
    this.host.event('Warning', 'BackOff', `Back-off restarting failed container ${this.spec.name}`);
    this.host.changed();
    this.timers.later(delay, () => {
      this.record.state = { waiting: { reason: 'ContainerCreating' } };
      this.start();
    });
  }

  // --- probes -------------------------------------------------------------------------------------

  private startProbes(): void {
    const { startupProbe, readinessProbe, livenessProbe } = this.spec;
    this.startup = startupProbe ? initialProbeState(false) : undefined;
    this.readiness = readinessProbe ? initialProbeState(false) : undefined;
    this.liveness = livenessProbe ? initialProbeState(true) : undefined;
    this.record.started = !startupProbe;
    this.record.ready = !startupProbe && !readinessProbe && !this.isInit;
    if (startupProbe) this.schedule(startupProbe, 'startup');
    else this.startSteadyProbes();
  }

  private startSteadyProbes(): void {
    if (this.spec.readinessProbe) this.schedule(this.spec.readinessProbe, 'readiness');
    if (this.spec.livenessProbe) this.schedule(this.spec.livenessProbe, 'liveness');
  }

  private schedule(probe: V1Probe, kind: 'startup' | 'readiness' | 'liveness'): void {
    const timing = probeTiming(probe);
    const tick = async () => {
      if (!this.child) return;
      const succeeded = await this.check(probe, timing.timeoutMs);
      if (!this.child) return;
      const before = this[kind] as ProbeState;
      const after = nextProbeState(before, succeeded, timing);
      this[kind] = after;
      if (!succeeded) this.host.event('Warning', 'Unhealthy', `${kind[0].toUpperCase()}${kind.slice(1)} probe failed`);
      if (after.passing !== before.passing) this.probeFlipped(kind, after.passing);
      if (kind === 'startup' && after.passing) return; // done: the steady probes take over
      if (this.child) this.timers.later(timing.periodMs, () => void tick());
    };
    this.timers.later(timing.initialDelayMs, () => void tick());
  }

  private probeFlipped(kind: 'startup' | 'readiness' | 'liveness', passing: boolean): void {
    if (kind === 'startup') {
      this.record.started = true;
      this.record.ready = !this.spec.readinessProbe;
      this.startSteadyProbes();
    } else if (kind === 'readiness') {
      this.record.ready = passing;
    } else if (!passing) {
      this.host.event('Normal', 'Killing', `Container ${this.spec.name} failed liveness probe, will be restarted`);
      void this.kill(this.host.terminationGraceMs); // then restarted, or not, by the pod's policy
    }
    this.host.changed();
  }

  private async check(probe: V1Probe | V1LifecycleHandler, timeoutMs: number): Promise<boolean> {
    const action = probeAction(probe, this.spec, this.host.podIP());
    if (!action.ok) {
      this.host.event('Warning', 'Unhealthy', action.message);
      return false;
    }
    return runAction(action.value, timeoutMs, this.child?.pid);
  }

  // --- stopping -----------------------------------------------------------------------------------

  /** Graceful stop: preStop, SIGTERM to the process group, SIGKILL at the deadline. */
  private async kill(graceMs: number): Promise<void> {
    const child = this.child;
    if (!child?.pid) return;
    const deadline = Date.now() + graceMs;
    const preStop = this.spec.lifecycle?.preStop;
    if (preStop) await this.check(preStop, graceMs);
    signalGroup(child.pid, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(child.pid as number, 'SIGKILL'), Math.max(0, deadline - Date.now()));
    await this.exited;
    clearTimeout(timer);
  }

  /** Stops for good (pod deleted): no restart after this. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.timers.clear();
    if (this.child) await this.kill(graceMs);
  }

  /** Kills at once, without preStop (the pod object is gone, or the kubelet exits). */
  async abort(): Promise<void> {
    this.stopping = true;
    this.timers.clear();
    if (this.child?.pid) signalGroup(this.child.pid, 'SIGKILL');
    await this.exited;
  }

}

export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // not (yet) a group leader: the process alone
    try {
      process.kill(pid, signal);
    } catch {
      // gone
    }
  }
}

/** Runs a probe or handler: HTTP 2xx/3xx, a TCP connect, or exec exit 0 inside the container's namespaces. */
async function runAction(action: ProbeAction, timeoutMs: number, pid: number | undefined): Promise<boolean> {
  if (action.kind === 'tcp') {
    return new Promise((resolve) => {
      const socket = connect({ host: action.host, port: action.port, timeout: timeoutMs });
      const done = (ok: boolean) => {
        socket.destroy();
        resolve(ok);
      };
      socket.once('connect', () => done(true));
      socket.once('timeout', () => done(false));
      socket.once('error', () => done(false));
    });
  }
  if (action.kind === 'http') {
    const url = new URL(action.url);
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve) => {
      // the kubelet does not verify a probe's certificate either
      const req = request(url, { headers: action.headers, timeout: timeoutMs, rejectUnauthorized: false }, (res) => {
        res.resume();
        resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 400);
      });
      req.once('timeout', () => req.destroy());
      req.once('error', () => resolve(false));
      req.end();
    });
  }
  if (pid === undefined) return false;
  return new Promise((resolve) => {
    const child = spawn('nsenter', [`--target=${pid}`, '--mount', '--net', '--', ...action.command], { stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code === 0);
    });
    child.once('error', () => resolve(false));
  });
}
