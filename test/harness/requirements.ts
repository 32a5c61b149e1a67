/**
 * A suite that needs something this machine may lack (root, the build) is skipped on a developer's
 * machine but FAILS under CI=true: CI counts only failures (.ci/run), so a skipped suite would
 * report green having run nothing.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export interface Requirement {
  /** what is missing and what to do about it, e.g. "not root: run as root (eBPF, namespaces)" */
  unmet: string;
  met: boolean;
}

export type SuitePlan = { run: true } | { run: false; fail: boolean; reason: string };

/** Whether the environment says it is CI: CI set to anything but empty, "0" or "false". */
export function isCi(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = (env.CI ?? '').trim().toLowerCase();
  return value !== '' && value !== '0' && value !== 'false';
}

/** Run when every requirement is met; otherwise skip, or fail under CI, naming what is unmet. */
export function planSuite(requirements: readonly Requirement[], ci: boolean): SuitePlan {
  const unmet = requirements.filter((r) => !r.met).map((r) => r.unmet);
  if (unmet.length === 0) return { run: true };
  return { run: false, fail: ci, reason: unmet.join('; ') };
}

export function rootRequirement(): Requirement {
  return { met: process.getuid?.() === 0, unmet: 'not root: run the tests as root (eBPF, network namespaces, cgroups)' };
}

/** Each path under `distDir` must exist (the build's outputs the suite runs as processes). */
export function builtRequirement(distDir: string, paths: readonly string[]): Requirement {
  const missing = paths.filter((p) => !existsSync(join(distDir, p)));
  return { met: missing.length === 0, unmet: `not built (${missing.map((p) => join(distDir, p)).join(', ')} missing): run npm run build` };
}

/**
 * `describe`, but for a suite with requirements: runs it, skips it (reason printed), or under
 * CI=true replaces it by one failing test whose error is the reason.
 */
export function describeRequiring(name: string, requirements: readonly Requirement[], body: () => void): void {
  const plan = planSuite(requirements, isCi());
  if (plan.run) {
    describe(name, body);
  } else if (plan.fail) {
    describe(name, () => {
      it('has what it needs to run', () => {
        throw new Error(`cannot run under CI=true: ${plan.reason}`);
      });
    });
  } else {
    process.stderr.write(`skipping "${name}": ${plan.reason} (under CI=true this fails)\n`);
    describe.skip(name, body);
  }
}
