/**
 * The kind path end to end, as `npm run e2e:kind` runs it (e2e/kind/local.sh): a Docker engine,
 * the images built here and cached by their inputs, two kind clusters, `clustermesh install` and
 * `connect`, the failover scenarios, teardown. Each scenario of its table is one test.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLUSTER_SUITE_WAIT_MS, acquireLabLock } from '../../test/harness/lab-lock.js';
import { describeRequiring, rootRequirement } from '../../test/harness/requirements.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
// cold: Debian, Node and node images and the Kubernetes binaries are built first (see scripts/kind/README.md)
const RUN_LIMIT_MS = 75 * 60_000;
const SCENARIOS = [
  'graceful: east scaled to 0',
  "abrupt: east's pods killed",
  "dead node: east's worker stopped",
  'partition: west cut off',
  'clustermesh-apiserver pod deleted',
  'disconnect',
];

interface Row {
  scenario: string;
  requests: number;
  failed: number;
}

/** The rows of the scenario table (e2e/scenarios/result.ts formatTable) in the script's stdout. */
function tableRows(stdout: string): Map<string, Row> {
  const rows = new Map<string, Row>();
  for (const line of stdout.split('\n')) {
    const m = /^\d+\s{2}(.+?)\s{2,}(\d+)\s{2}\s*(\d+)\s{2}/.exec(line);
    if (m) rows.set(m[1], { scenario: m[1], requests: Number(m[2]), failed: Number(m[3]) });
  }
  return rows;
}

function docker(args: string[]): string {
  return spawnSync('docker', args, { encoding: 'utf8' }).stdout.trim();
}

describeRequiring('npm run e2e:kind', [rootRequirement()], () => {
  let status: number | null;
  let rows: Map<string, Row>;
  beforeAll(async () => {
    // one cluster suite at a time (test/harness/lab-lock.ts); local.sh tears its clusters down
    const release = await acquireLabLock();
    try {
      const result = spawnSync('bash', [join(REPO_ROOT, 'e2e/kind/local.sh')], {
        cwd: REPO_ROOT,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
        timeout: RUN_LIMIT_MS,
        maxBuffer: 64 * 1024 * 1024,
      });
      status = result.status;
      rows = tableRows(result.stdout ?? '');
    } finally {
      release();
    }
  }, CLUSTER_SUITE_WAIT_MS + RUN_LIMIT_MS + 60_000);

  it('exits 0', () => {
    expect(status).toBe(0);
  });

  it.each(SCENARIOS)('scenario "%s": requests made, none failed', (scenario) => {
    const row = rows.get(scenario);
    expect(row).toBeDefined();
    expect(row!.requests).toBeGreaterThan(0);
    expect(row!.failed).toBe(0);
  });

  it('leaves no kind node container nor kind network behind', () => {
    expect(docker(['ps', '-a', '--filter', 'label=io.x-k8s.kind.cluster', '--format', '{{.Names}}'])).toBe(
      '',
    );
    expect(docker(['network', 'ls', '--filter', 'name=^kind$', '--format', '{{.Name}}'])).toBe('');
  });
});
