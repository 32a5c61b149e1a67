/**
 * The container image cannot be built here (no Docker engine), so these checks tie the Dockerfile
 * to what the chart runs and to what the build steps produce, and run the image's compile step.
 */
import type { V1Container, V1DaemonSet, V1Deployment } from '@kubernetes/client-node';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, findObject, renderCluster, run } from './chart-fixtures.js';

const dockerfile = readFileSync(join(REPO_ROOT, 'deploy/Dockerfile'), 'utf8');
const dockerignore = readFileSync(join(REPO_ROOT, 'deploy/Dockerfile.dockerignore'), 'utf8');
const instructions = dockerfile.split('\n').filter((line) => /^[A-Z]+ /.test(line));
const lastFrom = instructions.reduce((last, line, index) => (line.startsWith('FROM ') ? index : last), -1);
const runtimeStage = instructions.slice(lastFrom);
const workdir = runtimeStage.find((line) => line.startsWith('WORKDIR '))!.split(' ')[1];

/** `COPY [--from=x] <src>... <dest>` → sources, for copies from the stage `from` (undefined: the build context). */
function copySources(from?: string): string[] {
  return instructions
    .filter((line) => line.startsWith('COPY '))
    .map((line) => line.split(/\s+/).slice(1))
    .filter((words) => (words[0].startsWith('--from=') ? words[0] === `--from=${from}` : from === undefined))
    .flatMap((words) => words.filter((w) => !w.startsWith('--')).slice(0, -1));
}

const objects = renderCluster('east');
const daemonCommands: [string, V1Container][] = [
  [
    'clustermesh-apiserver',
    findObject<V1Deployment>(
      objects,
      'Deployment',
      'clustermesh-apiserver',
    ).spec!.template.spec!.containers.find((c) => c.name === 'clustermesh-apiserver')!,
  ],
  [
    'clustermesh-apiserver/kvstoremesh',
    findObject<V1Deployment>(
      objects,
      'Deployment',
      'clustermesh-apiserver',
    ).spec!.template.spec!.containers.find((c) => c.name === 'kvstoremesh')!,
  ],
  [
    'agent',
    findObject<V1DaemonSet>(objects, 'DaemonSet', 'clustermesh-agent').spec!.template.spec!.containers[0],
  ],
];

describe('deploy/Dockerfile', () => {
  it.each(daemonCommands)('the chart runs %s from the compiled entry point in the image', (daemon, c) => {
    expect(c.command).toEqual(['node', `${workdir}/dist/${daemon}/main.js`]);
    expect(runtimeStage).toContain('COPY --from=build /src/dist/ dist/');
  });

  it('ships the BPF object and the addon where the datapath looks for them (package root)', () => {
    expect(runtimeStage).toContain('COPY --from=deps /src/package.json ./');
    const setup = readFileSync(join(REPO_ROOT, 'scripts/setup.sh'), 'utf8');
    const addon = /^\s*addon=(\S+)$/m.exec(setup)![1];
    expect(runtimeStage).toContain(`COPY --from=build /src/${addon} ${addon}`);
    expect(runtimeStage).toContain('COPY --from=build /src/bpf/sock_lb.o bpf/sock_lb.o');
  });

  it('copies from the build context only what Dockerfile.dockerignore lets through', () => {
    const allowed = dockerignore
      .split('\n')
      .filter((l) => l.startsWith('!'))
      .map((l) => l.slice(1).replace(/\/$/, ''));
    const sources = copySources().map((s) => s.replace(/\/$/, ''));
    expect(sources.length).toBeGreaterThan(0);
    expect(sources.filter((s) => !allowed.includes(s))).toEqual([]);
    for (const source of sources)
      expect([source, existsSync(join(REPO_ROOT, source))]).toEqual([source, true]);
  });

  it('runs as a non-root user unless the pod asks otherwise', () => {
    expect(runtimeStage.filter((line) => line.startsWith('USER '))).toEqual(['USER 1000:1000']);
  });
});

describe('deploy/tsconfig.image.json (the image compile step)', () => {
  let outDir: string;
  beforeAll(() => {
    outDir = mkdtempSync(join(tmpdir(), 'deploy-image-tsc-'));
  });
  afterAll(() => rmSync(outDir, { recursive: true, force: true }));

  it('emits every daemon entry point the chart runs and nothing of cli/, lab/ or test/', () => {
    const tsc = join(REPO_ROOT, 'node_modules/.bin/tsc');
    const result = run(tsc, ['-p', 'deploy/tsconfig.image.json', '--outDir', outDir], undefined);
    expect(result.stdout + result.stderr).toBe('');
    expect(result.status).toBe(0);
    for (const [daemon] of daemonCommands) expect(existsSync(join(outDir, daemon, 'main.js'))).toBe(true);
    for (const excluded of ['cli', 'lab', 'test', 'e2e', 'bench'])
      expect(existsSync(join(outDir, excluded))).toBe(false);
  }, 120_000);
});
