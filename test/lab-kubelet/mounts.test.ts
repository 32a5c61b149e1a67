/**
 * Mount plans (pure) and the script run for real in a throwaway mount namespace (root): volumes
 * appear at their mountPaths, missing directories are made in an overlay only the container
 * sees, read-only mounts refuse writes, a Secret volume's atomic update reaches the container.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type HostView, type MountRequest, mountScript, planMounts, shellQuote } from '../../lab/kubelet/mounts.js';
import { writeAtomically } from '../../lab/kubelet/worker.js';

function fakeHost(existing: string[], links: Record<string, string> = {}): HostView {
  return { exists: (p) => existing.includes(p) || p in links, realpath: (p) => links[p] ?? p };
}
const m = (source: string, target: string, extra: Partial<MountRequest> = {}): MountRequest => ({ source, target, readOnly: false, file: false, ...extra });

describe('planMounts', () => {
  const host = fakeHost(['/', '/opt', '/var', '/var/lib', '/run', '/sys', '/sys/fs', '/sys/fs/bpf', '/etc'], { '/var/run': '/run' });

  it.each([
    { what: 'existing target: no overlay', mounts: [m('/s', '/sys/fs/bpf')], overlays: [], targets: ['/sys/fs/bpf'] },
    { what: 'missing target: overlay on its nearest parent', mounts: [m('/repo', '/opt/clustermesh')], overlays: ['/opt'], targets: ['/opt/clustermesh'] },
    {
      what: 'symlinked parent resolved, one overlay per directory, parents first',
      mounts: [m('/t', '/var/run/secrets/kubernetes.io/serviceaccount'), m('/c', '/run/clustermesh/cgroupv2')],
      overlays: ['/run'],
      targets: ['/run/clustermesh/cgroupv2', '/run/secrets/kubernetes.io/serviceaccount'],
    },
    {
      what: 'nested overlays collapse into the outer one',
      mounts: [m('/a', '/var/lib/clustermesh/remotes'), m('/b', '/var/x')],
      overlays: ['/var'],
      targets: ['/var/x', '/var/lib/clustermesh/remotes'],
    },
  ])('$what', ({ mounts, overlays, targets }) => {
    const plan = planMounts(mounts, host);
    expect(plan.ok && plan.value.overlays).toEqual(overlays);
    expect(plan.ok && plan.value.mounts.map((x) => x.target)).toEqual(targets);
  });

  it.each([
    ['/data', 'cannot be made under /'],
    ['/sys/fs/bpf/x/y', 'cannot be made under /sys/fs/bpf'],
    ['relative/path', 'is not absolute'],
  ])('refuses %s', (target, message) => {
    expect(planMounts([m('/s', target)], host)).toEqual({ ok: false, message: expect.stringContaining(message) });
  });

  it('quotes every path for the shell', () => {
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    const plan = planMounts([m("/a b/it's", '/opt/x y', { readOnly: true })], host);
    const script = plan.ok ? mountScript(plan.value, '/scratch', '/') : '';
    expect(script).toContain(`mount --rbind '/a b/it'\\''s' '/scratch/s0'`);
    expect(script).toContain(`mount -o remount,bind,ro '/scratch/o0/merged/x y'`);
    expect(script.split('\n').slice(-3)).toEqual([`mount --move '/scratch/o0/merged' '/opt'`, `cd '/'`, 'exec "$@"']);
  });

  it('moves an overlay over a parent of the scratch directory last (it would hide the others)', () => {
    const script = mountScript({ mounts: [], overlays: ['/run', '/var/lib'] }, '/run/lab/scratch', '/');
    expect(script.split('\n').filter((l) => l.startsWith('mount --move'))).toEqual([
      `mount --move '/run/lab/scratch/o1/merged' '/var/lib'`,
      `mount --move '/run/lab/scratch/o0/merged' '/run'`,
    ]);
  });
});

const root = process.getuid?.() === 0;
const describeAsRoot = root || process.env.CI === 'true' ? describe : describe.skip;

describeAsRoot('the script in a real mount namespace', () => {
  let dir: string;
  beforeAll(() => {
    if (!root) throw new Error('these tests need root (mount namespaces): run them as root');
    dir = mkdtempSync(join(tmpdir(), 'lab-kubelet-mounts-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function inNamespace(requests: MountRequest[], command: string): string {
    const scratch = join(dir, `scratch-${Math.random().toString(16).slice(2)}`);
    mkdirSync(scratch);
    const plan = planMounts(requests, { exists: existsSync, realpath: (p) => execFileSync('realpath', [p]).toString().trim() });
    if (!plan.ok) throw new Error(plan.message);
    const script = mountScript(plan.value, scratch, '/');
    return execFileSync('unshare', ['--mount', '--propagation', 'slave', '--', 'sh', '-ec', script, 'c', 'sh', '-c', command], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  it('mounts a volume where no directory exists, and leaves the host as it was', () => {
    const volume = join(dir, 'volume');
    writeAtomically(volume, [{ path: 'token', data: 'T1', mode: 0o644 }]);
    const parent = join(dir, 'host');
    mkdirSync(parent);
    const target = join(parent, 'secrets', 'kubernetes.io', 'serviceaccount');
    expect(inNamespace([m(volume, target, { readOnly: true })], `cat ${target}/token; echo x > ${target}/new 2>/dev/null || echo ' read-only'`)).toBe('T1 read-only\n');
    expect(readdirSync(parent)).toEqual([]);
  });

  it('works when the overlaid directory holds the scratch and the sources (the lab keeps its state under /run)', () => {
    const run = join(dir, 'run');
    const volume = join(run, 'kubelet', 'volume');
    writeAtomically(volume, [{ path: 'ca.crt', data: 'CA', mode: 0o644 }]);
    const scratch = join(run, 'kubelet', 'mnt');
    mkdirSync(scratch);
    const target = join(run, 'secrets', 'sa');
    const plan = planMounts([m(volume, target)], { exists: existsSync, realpath: (p) => p });
    if (!plan.ok) throw new Error(plan.message);
    expect(plan.value.overlays).toEqual([run]);
    const out = execFileSync('unshare', ['--mount', '--propagation', 'slave', '--', 'sh', '-ec', mountScript(plan.value, scratch, '/'), 'c', 'sh', '-c', `cat ${target}/ca.crt; ls ${run}`], { encoding: 'utf8' });
    expect(out).toBe('CAkubelet\nsecrets\n');
    expect(readdirSync(run)).toEqual(['kubelet']);
  });

  it('a file source binds onto a file, created in the overlay', () => {
    const file = join(dir, 'one.conf');
    writeFileSync(file, 'conf');
    mkdirSync(join(dir, 'etc'));
    expect(inNamespace([m(file, join(dir, 'etc', 'app', 'one.conf'), { file: true })], `cat ${join(dir, 'etc', 'app', 'one.conf')}`)).toBe('conf');
    expect(readdirSync(join(dir, 'etc'))).toEqual([]);
  });

  it('an atomic volume update is seen through the mount', () => {
    const volume = join(dir, 'remotes');
    writeAtomically(volume, [{ path: 'west', data: 'v1', mode: 0o400 }]);
    const target = join(dir, 'mnt-remotes');
    mkdirSync(target);
    const script = `cat ${target}/west; while [ "$(cat ${target}/west 2>/dev/null)" = v1 ]; do sleep 0.05; done; cat ${target}/west; ls ${target}`;
    const child = import('node:child_process').then(({ spawn }) => {
      const scratch = join(dir, 'scratch-update');
      mkdirSync(scratch);
      const plan = planMounts([m(volume, target)], { exists: existsSync, realpath: (p) => p });
      if (!plan.ok) throw new Error(plan.message);
      const proc = spawn('unshare', ['--mount', '--propagation', 'slave', '--', 'sh', '-ec', mountScript(plan.value, scratch, '/'), 'c', 'sh', '-c', script]);
      let out = '';
      proc.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out === 'v1') writeAtomically(volume, [{ path: 'west', data: 'v2', mode: 0o400 }, { path: 'east', data: 'e', mode: 0o400 }]);
      });
      return new Promise<string>((resolve) => proc.on('exit', () => resolve(out)));
    });
    return expect(child).resolves.toBe('v1v2east\nwest\n');
  });
});

describe('writeAtomically', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'lab-kubelet-atomic-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('top-level names are links through ..data; removed keys and old generations go', () => {
    writeAtomically(dir, [{ path: 'a', data: '1', mode: 0o600 }, { path: 'sub/b', data: '2', mode: 0o600 }]);
    const first = readlinkSync(join(dir, '..data'));
    writeAtomically(dir, [{ path: 'a', data: '3', mode: 0o600 }]);
    expect(readFileSync(join(dir, 'a'), 'utf8')).toBe('3');
    expect(readlinkSync(join(dir, 'a'))).toBe('..data/a');
    expect(readdirSync(dir).sort()).toEqual([readlinkSync(join(dir, '..data')), '..data', 'a'].sort());
    expect(existsSync(join(dir, first))).toBe(false);
  });

  it('an empty set leaves an empty directory view', () => {
    writeAtomically(dir, [{ path: 'a', data: '1', mode: 0o600 }]);
    writeAtomically(dir, []);
    expect(readdirSync(dir).filter((n) => !n.startsWith('..'))).toEqual([]);
  });
});
