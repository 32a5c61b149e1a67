/**
 * The suites that run whole clusters — a lab (every lab uses the same address plan) or the kind e2e —
 * hold this lock, so they run one at a time: jest runs files in parallel workers, and on this 2-core
 * VM a failover suite beside another cluster suite missed its timing-bound steps (a request timed
 * out, a node lease ran out). test/harness/cluster-suites-first.js starts them before every other
 * file, so while one runs the other worker waits for the lock instead of loading the CPUs. A lock
 * file holding the owner's identity (pid and start time) serialises them; a lock whose owner died (a
 * crashed run) is taken over, even when its pid went to another process since.
 */
import { mkdirSync, openSync, readFileSync, rmSync, writeSync, closeSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { formatProcessIdentity, isRunning, parseProcessIdentity, processIdentity } from '../../lab/topology/host.js';

const LOCK_DIR = '/run/clustermesh-lab';
const LOCK_FILE = `${LOCK_DIR}/.test-lock`;
const POLL_MS = 200;
/** how long a cluster suite may wait for the others (they take ~3-6 min each when warm) */
export const CLUSTER_SUITE_WAIT_MS = 45 * 60_000;
const OWN_IDENTITY = processIdentity(process.pid)!;

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
    writeSync(fd, formatProcessIdentity(OWN_IDENTITY));
    closeSync(fd);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

function ownerIsGone(): boolean {
  let content: string;
  try {
    content = readFileSync(LOCK_FILE, 'utf8');
  } catch {
    return false; // removed meanwhile: the next tryCreate decides
  }
  const owner = parseProcessIdentity(content);
  return owner === undefined || !isRunning(owner);
}

function release(): void {
  try {
    if (readFileSync(LOCK_FILE, 'utf8') === formatProcessIdentity(OWN_IDENTITY)) rmSync(LOCK_FILE, { force: true });
  } catch {
    // already gone
  }
}
