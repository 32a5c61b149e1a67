import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './chart-fixtures.js';

const ENGINE = 'scripts/kind/engine.sh';

/**
 * scripts/kind/engine.sh before it starts dockerd: pid files left by an engine that was killed name
 * pids that other processes reuse, and dockerd then waits on the wrong process for a minute and gives
 * up (seen on this project's CI machine). The script is sourced, with its pid files pointed into a
 * temporary directory, so the test never touches the machine's engine.
 */
describe('engine.sh clear_stale_pidfiles', () => {
  let dir: string;
  let fakeContainerd: ChildProcess | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'deploy-kind-engine-'));
  });
  afterEach(() => {
    fakeContainerd?.kill('SIGKILL');
    fakeContainerd = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  const dockerdFile = () => join(dir, 'docker.pid');
  const containerdFile = () => join(dir, 'containerd.pid');

  function clearStalePidfiles() {
    return run('/bin/bash', [
      '-c',
      `source ${ENGINE} && DOCKERD_PIDFILE='${dockerdFile()}' CONTAINERD_PIDFILE='${containerdFile()}' clear_stale_pidfiles`,
    ]);
  }

  /** A process the kernel names `containerd` (a copy of sleep under that name), as a live engine's. */
  async function startFakeContainerd(): Promise<number> {
    const binary = join(dir, 'containerd');
    copyFileSync('/bin/sleep', binary);
    fakeContainerd = spawn(binary, ['600'], { stdio: 'ignore' });
    await new Promise((resolve, reject) => fakeContainerd!.once('spawn', resolve).once('error', reject));
    return fakeContainerd.pid!;
  }

  /** The pid of a process that has exited (and been reaped). */
  function exitedPid(): number {
    const result = run('/bin/bash', ['-c', 'true & echo $!; wait']);
    return Number(result.stdout.trim());
  }

  const cases: [string, boolean, () => Promise<string> | string][] = [
    ['a pid now used by another program (this test)', false, () => String(process.pid)],
    ['a pid no process has', false, () => String(exitedPid())],
    ['an empty file', false, () => ''],
    ['a containerd that still runs', true, async () => String(await startFakeContainerd())],
  ];

  it.each(cases)('containerd.pid naming %s: kept %s', async (_, kept, content) => {
    const pid = await content();
    writeFileSync(containerdFile(), pid);
    const result = clearStalePidfiles();
    expect(result.status).toBe(0);
    expect(existsSync(containerdFile())).toBe(kept);
    expect(result.stderr).toBe(
      kept
        ? ''
        : `engine: removed ${containerdFile()}, left by a containerd that no longer runs (pid ${pid || 'none'} is not a containerd now)\n`,
    );
  });

  it('removes a docker.pid naming another program, and leaves a missing containerd.pid alone', () => {
    writeFileSync(dockerdFile(), String(process.pid));
    const result = clearStalePidfiles();
    expect(result.status).toBe(0);
    expect(existsSync(dockerdFile())).toBe(false);
    expect(result.stderr).toBe(
      `engine: removed ${dockerdFile()}, left by a dockerd that no longer runs (pid ${process.pid} is not a dockerd now)\n`,
    );
  });
});
