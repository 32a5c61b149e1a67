import {
  chmodSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, parseManifests, run, type K8sObject } from './chart-fixtures.js';

const SCRIPT_DIR = 'e2e/kind';
const scripts = readdirSync(join(REPO_ROOT, SCRIPT_DIR)).filter((f) => f.endsWith('.sh'));
const entryPoints = scripts.filter((f) => f !== 'lib.sh');

describe('e2e/kind scripts', () => {
  it('has the scripts the kind path needs', () => {
    expect(entryPoints.sort()).toEqual([
      'down.sh',
      'install.sh',
      'local.sh',
      'run.sh',
      'scenarios.sh',
      'up.sh',
    ]);
  });

  it('passes shellcheck, following the sourced lib.sh', () => {
    const result = run('shellcheck', ['-x', ...scripts.map((f) => `${SCRIPT_DIR}/${f}`)]);
    expect(result.stdout + result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it.each(entryPoints)('%s stops at the first error (set -euo pipefail before any work)', (script) => {
    const lines = readFileSync(join(REPO_ROOT, SCRIPT_DIR, script), 'utf8').split('\n');
    const firstCommand = lines.findIndex((line) => line.trim() !== '' && !line.startsWith('#'));
    expect(lines[firstCommand]).toBe('set -euo pipefail');
  });
});

describe('e2e/kind scripts without Docker or kind', () => {
  // A PATH holding only what the test puts there, so the machine's own tools cannot leak in.
  let binDir: string;
  beforeAll(() => {
    binDir = mkdtempSync(join(tmpdir(), 'deploy-kind-path-'));
    symlinkSync('/usr/bin/dirname', join(binDir, 'dirname'));
  });
  afterAll(() => rmSync(binDir, { recursive: true, force: true }));

  function fakeTool(name: string, exitCode: number): void {
    writeFileSync(join(binDir, name), `#!/bin/sh\nexit ${exitCode}\n`);
    chmodSync(join(binDir, name), 0o755);
  }

  function runScript(script: string) {
    return run('/bin/bash', [`${SCRIPT_DIR}/${script}`], { PATH: binDir, HOME: binDir });
  }

  it.each(['up.sh', 'install.sh', 'scenarios.sh', 'run.sh'])(
    '%s refuses when docker is missing',
    (script) => {
      const result = runScript(script);
      expect(result.status).toBe(1);
      expect(result.stderr.trim()).toBe(
        'e2e/kind: error: docker is not installed: kind needs Docker (https://docs.docker.com/engine/install/)',
      );
    },
  );

  it('refuses when docker is only a client with no engine', () => {
    fakeTool('docker', 1);
    const result = runScript('up.sh');
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("docker is installed but no engine answers ('docker info' failed)");
  });

  it('refuses when kind is missing, for the teardown too', () => {
    fakeTool('docker', 0);
    for (const script of ['up.sh', 'down.sh']) {
      const result = runScript(script);
      expect(result.status).toBe(1);
      expect(result.stderr).toMatch(/e2e\/kind: error: kind is not installed/);
    }
  });
});

describe('e2e/kind scenario manifests', () => {
  const load = (file: string): K8sObject[] =>
    parseManifests(readFileSync(join(REPO_ROOT, SCRIPT_DIR, 'manifests', file), 'utf8'));
  const echo = load('echo.yaml');
  const client = load('client.yaml');
  const lib = readFileSync(join(REPO_ROOT, SCRIPT_DIR, 'lib.sh'), 'utf8');
  const constant = (name: string) => new RegExp(`^readonly ${name}=(\\S+)$`, 'm').exec(lib)?.[1];

  it('puts everything in the namespace the scripts use', () => {
    const namespace = constant('DEMO_NAMESPACE');
    const namespaced = [...echo, ...client].filter((o) => o.kind !== 'Namespace');
    expect(namespaced.every((o) => o.metadata.namespace === namespace)).toBe(true);
    expect(echo.find((o) => o.kind === 'Namespace')?.metadata.name).toBe(namespace);
  });

  it('runs the image the scripts load into kind, without pulling it', () => {
    for (const deployment of [...echo, ...client].filter((o) => o.kind === 'Deployment')) {
      const containers = (deployment as unknown as { spec: { template: { spec: { containers: object[] } } } })
        .spec.template.spec.containers;
      for (const c of containers) {
        expect(c).toMatchObject({ image: constant('SCENARIO_IMAGE'), imagePullPolicy: 'Never' });
      }
    }
  });

  it('marks the echo Service global with local affinity', () => {
    const service = echo.find((o) => o.kind === 'Service') as K8sObject & {
      metadata: { annotations: object };
    };
    expect(service.metadata.annotations).toEqual({
      'clustermesh.io/global': 'true',
      'clustermesh.io/affinity': 'local',
    });
  });

  it('ships JavaScript that node accepts (echo server and probe)', () => {
    const echoDeployment = echo.find((o) => o.kind === 'Deployment') as unknown as {
      spec: { template: { spec: { containers: { args: string[] }[] } } };
    };
    const probe = client.find((o) => o.kind === 'ConfigMap') as unknown as { data: Record<string, string> };
    const sources = { 'echo.cjs': echoDeployment.spec.template.spec.containers[0].args[0], ...probe.data };
    const dir = mkdtempSync(join(tmpdir(), 'deploy-kind-js-'));
    try {
      for (const [file, source] of Object.entries(sources)) {
        writeFileSync(join(dir, file), source);
        const result = run(process.execPath, ['--check', join(dir, file)]);
        expect([file, result.stderr]).toEqual([file, '']);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
