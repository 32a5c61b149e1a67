/**
 * Every lab uses the same address plan, so two test files must not run a lab at the same time
 * (jest runs files in parallel workers). A lock file holding the owner's pid serialises them; a
 * lock whose owner died (a crashed run) is taken over.
 */
import { mkdirSync, openSync, readFileSync, rmSync, writeSync, closeSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';

const LOCK_DIR = '/run/clustermesh-lab';
const LOCK_FILE = `${LOCK_DIR}/.test-lock`;
const POLL_MS = 200;

export async function acquireLabLock(timeoutMs = 10 * 60_000): Promise<() => void> {
  mkdirSync(LOCK_DIR, { recursive: true });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (tryCreate()) return release;
    if (ownerIsGone()) rmSync(LOCK_FILE, { force: true });
    else if (Date.now() > deadline) throw new Error(`another test holds the lab lock ${LOCK_FILE} for too long`);
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
