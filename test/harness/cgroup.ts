/**
 * Throwaway cgroup v2 directories for tests: unique per process, and removal kills whatever is
 * still inside (cgroup.kill), waits for it to be gone, then removes the directory.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cgroupPids, createCgroup, removeCgroup } from '../../lib/cgroup.js';
import { waitFor } from './netns.js';

let created = 0;

export interface TestCgroup {
  /** absolute directory under the cgroup2 mount */
  dir: string;
  /** kills its processes and removes it; safe to call twice */
  remove(): Promise<void>;
}

/** Creates `<prefix>-<pid>-<n>` directly under the cgroup2 mount. */
export function createTestCgroup(prefix: string): TestCgroup {
  const dir = createCgroup(`${prefix}-${process.pid}-${++created}`);
  return {
    dir,
    async remove() {
      if (!existsSync(dir)) return;
      if (cgroupPids(dir).length > 0) {
        writeFileSync(join(dir, 'cgroup.kill'), '1');
        await waitFor(() => cgroupPids(dir).length === 0, 5000, `processes of ${dir} to exit`);
      }
      removeCgroup(dir);
    },
  };
}
