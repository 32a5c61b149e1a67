/** lab/cluster/processes.ts on real processes: what a frozen, a running, a killed and a reaped process look like. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { labPaths } from '../../lab/cluster/paths.js';
import { isAlive, isStopped, killProcesses, runningPid, runsProcesses, stopProcesses } from '../../lab/cluster/processes.js';
import { formatProcessIdentity, processIdentity } from '../../lab/topology/host.js';

describe('process states', () => {
  let child: ChildProcess | undefined;
  const start = () => {
    child = spawn('sleep', ['60'], { stdio: 'ignore' });
    return child.pid!;
  };

  afterEach(() => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  it('a stopped process is alive and stopped; continued, it is no longer stopped', async () => {
    const pid = start();
    expect([isAlive(pid), isStopped(pid)]).toEqual([true, false]);
    process.kill(pid, 'SIGSTOP');
    await waitUntil(() => isStopped(pid));
    expect(isAlive(pid)).toBe(true);
    process.kill(pid, 'SIGCONT');
    await waitUntil(() => !isStopped(pid));
    expect(isAlive(pid)).toBe(true);
  });

  it('killProcesses resolves once the process is gone, even before its parent reaps it', async () => {
    const pid = start();
    await killProcesses([pid], 'a test sleep');
    expect([isAlive(pid), isStopped(pid)]).toEqual([false, false]);
  });

  it('killProcesses refuses an empty list', async () => {
    await expect(killProcesses([], 'nothing')).rejects.toThrow('no process of nothing to kill');
  });
});

describe('pid files of a killed run', () => {
  // the files of a lab killed before its teardown name pids the kernel has since handed to others
  const paths = labPaths(`pf${process.pid}`);
  const children: ChildProcess[] = [];
  const sleeper = async () => {
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    children.push(child);
    await new Promise((resolve) => child.once('spawn', resolve));
    return child;
  };
  beforeEach(() => mkdirSync(paths.pids, { recursive: true }));
  afterEach(() => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
    rmSync(paths.root, { recursive: true, force: true });
  });

  it('stopProcesses stops the process a file names, and leaves alone one that only has its pid now', async () => {
    const ours = await sleeper();
    const stranger = await sleeper();
    writeFileSync(join(paths.pids, 'etcd.pid'), formatProcessIdentity(processIdentity(ours.pid!)!));
    writeFileSync(join(paths.pids, 'kubelet.pid'), `${stranger.pid} 1`); // the same pid, started at another time
    writeFileSync(join(paths.pids, 'old.pid'), `${stranger.pid}`); // a bare pid: nothing to tell it by
    await stopProcesses(`pf${process.pid}`);
    expect([isAlive(ours.pid!), isAlive(stranger.pid!)]).toEqual([false, true]);
    expect(readdirSync(paths.pids)).toEqual([]);
  });

  it('runsProcesses: a lab whose pid files all name other processes now runs nothing', async () => {
    const child = await sleeper();
    writeFileSync(join(paths.pids, 'etcd.pid'), `${child.pid} 1`);
    writeFileSync(join(paths.pids, 'kube-apiserver.pid'), '');
    expect(runsProcesses(`pf${process.pid}`)).toBe(false);
    writeFileSync(join(paths.pids, 'kubelet.pid'), formatProcessIdentity(processIdentity(child.pid!)!));
    expect(runsProcesses(`pf${process.pid}`)).toBe(true);
    expect(runsProcesses(`pn${process.pid}`)).toBe(false); // no pid files at all
  });

  it('runningPid reads the pid only while the same process runs', async () => {
    const child = await sleeper();
    const file = join(paths.pids, 'kubelet.pid');
    writeFileSync(file, formatProcessIdentity(processIdentity(child.pid!)!));
    expect(runningPid(file)).toBe(child.pid);
    writeFileSync(file, `${child.pid} 1`);
    expect(runningPid(file)).toBeUndefined();
    rmSync(file);
    expect([existsSync(file), runningPid(file)]).toEqual([false, undefined]);
  });
});

async function waitUntil(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  if (!condition()) throw new Error('condition not reached within 2 s');
}
