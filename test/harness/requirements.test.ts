/**
 * Suites with requirements: the pure plan (run / skip / fail under CI) and, through a child jest
 * on a fixture suite, that CI=true turns an unmet requirement into a reported failure.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { isCi, planSuite, type Requirement } from './requirements.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const met: Requirement = { met: true, unmet: 'never shown' };
const noRoot: Requirement = { met: false, unmet: 'not root' };
const noBuild: Requirement = { met: false, unmet: 'not built' };

describe('planSuite', () => {
  it.each([
    ['nothing required, locally', [], false, { run: true }],
    ['all met, under CI', [met, met], true, { run: true }],
    ['one unmet, locally: skip', [met, noRoot], false, { run: false, fail: false, reason: 'not root' }],
    ['one unmet, under CI: fail', [noRoot, met], true, { run: false, fail: true, reason: 'not root' }],
    ['two unmet: both named', [noRoot, noBuild], true, { run: false, fail: true, reason: 'not root; not built' }],
  ] as const)('%s', (_name, requirements, ci, plan) => {
    expect(planSuite(requirements, ci)).toEqual(plan);
  });
});

describe('isCi', () => {
  it.each([
    [undefined, false],
    ['', false],
    ['false', false],
    ['0', false],
    ['true', true],
    ['1', true],
    ['TRUE', true],
  ])('CI=%s → %s', (value, expected) => {
    expect(isCi(value === undefined ? {} : { CI: value })).toBe(expected);
  });
});

describe('a suite with an unmet requirement, in a child jest', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cm-requirements-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function runFixture(ci: string | undefined): Promise<{ numFailedTests: number; numPendingTests: number; numPassedTests: number; message: string }> {
    const out = join(dir, `report-${ci ?? 'unset'}.json`);
    const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '--experimental-vm-modules', CI: ci };
    if (ci === undefined) delete env.CI;
    const jest = join(ROOT, 'node_modules', 'jest', 'bin', 'jest.js');
    const args = [jest, '--rootDir', ROOT, '--testMatch', '<rootDir>/test/harness/fixtures/unmet.suite.ts', '--json', '--outputFile', out];
    await promisify(execFile)(process.execPath, args, { cwd: ROOT, env }).catch(() => undefined); // exit 1 on a failure: read the report
    const report = JSON.parse(readFileSync(out, 'utf8'));
    const message = report.testResults.flatMap((f: { assertionResults: { failureMessages: string[] }[] }) => f.assertionResults.flatMap((a) => a.failureMessages)).join('\n');
    return { numFailedTests: report.numFailedTests, numPendingTests: report.numPendingTests, numPassedTests: report.numPassedTests, message };
  }

  it('fails under CI=true, naming what is missing', async () => {
    const report = await runFixture('true');
    expect(report).toMatchObject({ numFailedTests: 1, numPassedTests: 0 });
    expect(report.message).toContain('cannot run under CI=true: fixture requirement never met: nothing to do');
  }, 120_000);

  it('is skipped without CI', async () => {
    expect(await runFixture(undefined)).toMatchObject({ numFailedTests: 0, numPassedTests: 0, numPendingTests: 1 });
  }, 120_000);
});
