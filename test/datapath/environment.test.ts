/** A bad environment gives one line saying what is wrong and what to do. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Datapath } from '../../lib/datapath/index.js';
import { loadNative, packageRoot } from '../../native/index.js';

let scratch: string;

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'cm-dp-env-'));
});

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

it('refuses a pin directory that is not on bpffs', async () => {
  const pinDir = join(scratch, 'pins');
  await expect(Datapath.open({ pinDir })).rejects.toMatchObject({
    message: `ENODEV: bpffs not mounted at ${pinDir}: run \`mount -t bpf bpf /sys/fs/bpf\` and pin under it`,
    code: 'ENODEV',
  });
  expect(existsSync(pinDir)).toBe(false);
});

it('refuses to attach to a directory that is not a cgroup v2', async () => {
  const pinDir = `/sys/fs/bpf/cm-dp-env-${process.pid}`;
  const dp = await Datapath.open({ pinDir });
  try {
    expect(() => dp.attach(scratch)).toThrow(`ENOENT: cgroup v2 not found at ${scratch}: pass a directory under the cgroup2 mount (see /proc/mounts)`);
  } finally {
    dp.close();
    Datapath.destroy(pinDir);
  }
  expect(existsSync(pinDir)).toBe(false);
});

it('names the missing BPF object and how to build it', async () => {
  const objectPath = join(scratch, 'missing.o');
  await expect(Datapath.open({ pinDir: '/sys/fs/bpf/unused', objectPath })).rejects.toThrow(
    `BPF object missing at ${objectPath}: run \`make -C bpf\` (or npm run setup)`,
  );
});

it('says that loading BPF needs root when run without privileges', () => {
  const addon = join(packageRoot, 'native', 'build', 'Release', 'clustermesh_native.node');
  const script = `
    const native = require(${JSON.stringify(addon)});
    try { native.openObject(${JSON.stringify(join(packageRoot, 'bpf', 'sock_lb.o'))}, '/sys/fs/bpf'); }
    catch (e) { process.stdout.write(JSON.stringify({ message: e.message, code: e.code, errno: e.errno })); }`;
  const out = execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath, '-e', script], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH },
  });
  expect(JSON.parse(out)).toEqual({ message: 'EPERM: loading BPF needs root (CAP_BPF+CAP_SYS_ADMIN)', code: 'EPERM', errno: 1 });
  expect(loadNative().constants().CM_PROTO_TCP).toBe(6);
});
