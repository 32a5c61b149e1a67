/**
 * The suites that run whole clusters — a lab (every lab uses the same address plan) or the kind e2e —
 * hold this lock, so they run one at a time: jest runs files in parallel workers, and on this 2-core
 * VM a failover suite beside another cluster suite missed its timing-bound steps (a request timed
 * out, a node lease ran out). test/harness/cluster-suites-first.js starts them before every other
 * file, so while one runs the other worker waits for the lock instead of loading the CPUs. A lock
 * file holding the owner's pid serialises them; a lock whose owner died (a crashed run) is taken over.
 */
import { mkdirSync, openSync, readFileSync, rmSync, writeSync, closeSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';

const LOCK_DIR = '/run/clustermesh-lab';
const LOCK_FILE = `${LOCK_DIR}/.test-lock`;
const POLL_MS = 200;
/** how long a cluster suite may wait for the others (they take ~3-6 min each when warm) */
export const CLUSTER_SUITE_WAIT_MS = 45 * 60_000;

export async function acquireLabLock(timeoutMs = CLUSTER_SUITE_WAIT_MS): Promise<() => void> {
  mkdirSync(LOCK_DIR, { recursive: true });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (tryCreate()) return release;
    if (ownerIsGone()) rmSync(LOCK_FILE, { force: true });
    else if (Date.now() > deadline) throw new Error(`other cluster suites held the lab lock ${LOCK_FILE} for more than ${timeoutMs / 60_000} min`);
    else await delay(POLL_MS);
  }
}

function tryCreate(): boolean {
  try {
    const fd = openSync(LOCK_FILE, 'wx');
    writeSync(fd, String(process.pid));
    closeSync(fd);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

function ownerIsGone(): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(LOCK_FILE, 'utf8'));
  } catch {
    return false; // removed meanwhile: the next tryCreate decides
  }
  if (!Number.isInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

function release(): void {
  try {
    if (Number(readFileSync(LOCK_FILE, 'utf8')) === process.pid) rmSync(LOCK_FILE, { force: true });
  } catch {
    // already gone
  }
}
