/** lab/cluster/processes.ts on real processes: what a frozen, a running, a killed and a reaped process look like. */
import { spawn, type ChildProcess } from 'node:child_process';
import { isAlive, isStopped, killProcesses } from '../../lab/cluster/processes.js';

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

async function waitUntil(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  if (!condition()) throw new Error('condition not reached within 2 s');
}
