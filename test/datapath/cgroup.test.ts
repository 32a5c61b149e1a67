/** lib/cgroup.ts against the real cgroup2 mount and against mount tables given to it. */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroupPids, createCgroup, findCgroup2Mount, moveToCgroup, parseCgroup2Mount, removeCgroup } from '../../lib/cgroup.js';
import { waitFor } from '../harness/netns.js';

describe('finding the cgroup2 mount', () => {
  it.each([
    ['a hybrid host', 'cgroup /sys/fs/cgroup/memory cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n', '/sys/fs/cgroup/unified'],
    ['a unified host', 'sysfs /sys sysfs rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n', '/sys/fs/cgroup'],
    ['an escaped path', 'none /mnt/my\\040cgroups cgroup2 rw 0 0\n', '/mnt/my cgroups'],
    ['no cgroup2', 'cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n', undefined],
  ])('on %s', (_name, mounts, expected) => expect(parseCgroup2Mount(mounts)).toBe(expected));

  it('says "cgroup v2 not found" when the mount table has none', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cm-dp-mounts-'));
    try {
      writeFileSync(join(dir, 'mounts'), 'proc /proc proc rw 0 0\n');
      expect(() => findCgroup2Mount(join(dir, 'mounts'))).toThrow(
        `cgroup v2 not found: no cgroup2 entry in ${join(dir, 'mounts')}; mount one with \`mount -t cgroup2 none /sys/fs/cgroup\``,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('finds this machine\'s mount from /proc/mounts', () => {
    expect(existsSync(join(findCgroup2Mount(), 'cgroup.controllers'))).toBe(true);
  });
});

describe('child cgroups', () => {
  it('creates one, moves a process in, refuses to remove it while occupied, removes it after', async () => {
    const dir = createCgroup(`cm-dp-cgtest-${process.pid}/inner`);
    const parent = join(dir, '..');
    const sleeper = spawn('sleep', ['30']);
    try {
      moveToCgroup(dir, sleeper.pid!);
      expect(cgroupPids(dir)).toEqual([sleeper.pid]);
      expect(() => removeCgroup(parent)).toThrow(`cannot remove cgroup ${dir}: processes ${sleeper.pid} are still in it`);
    } finally {
      sleeper.kill('SIGKILL');
      await waitFor(() => !existsSync(dir) || cgroupPids(dir).length === 0, 5000, 'sleep to exit');
      removeCgroup(parent);
    }
    expect(existsSync(parent)).toBe(false);
  });

  it('refuses names that leave the mount', () => {
    expect(() => createCgroup('../escape')).toThrow('must name a directory below');
  });
});
