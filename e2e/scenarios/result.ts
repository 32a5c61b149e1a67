/** What every scenario returns, the suite's table of them, and the restore-even-on-failure wrapper. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { type TimedRecord, errorKinds, failedCount } from './analysis.js';

export type Fact = number | string | boolean | null | Record<string, number>;

export interface ScenarioResult {
  /** the scenario number ("9a" UDP, "9b" IPv6) */
  id: string;
  scenario: string;
  requests: number;
  failed: number;
  /** the scenario's headline time in ms (see `recoveryMeaning`); null when it has none */
  recoveryMs: number | null;
  recoveryMeaning: string;
  /** further measured figures (counts, times, agent counters) */
  facts: Record<string, Fact>;
  /** every request, on the suite's clock (left out of the JSON report) */
  records: TimedRecord[];
}

export function resultOf(
  id: string,
  scenario: string,
  records: TimedRecord[],
  recovery: { ms: number | undefined | null; meaning: string },
  facts: Record<string, Fact> = {},
): ScenarioResult {
  return {
    id,
    scenario,
    requests: records.length,
    failed: failedCount(records),
    recoveryMs: recovery.ms ?? null,
    recoveryMeaning: recovery.meaning,
    facts: { ...facts, errors: errorKinds(records) },
    records,
  };
}

/**
 * Runs a scenario, then always puts back what it changed. A restore failure after a scenario
 * failure does not hide the scenario's own error (it is appended).
 */
export async function withRestore<T>(run: () => Promise<T>, restore: () => Promise<void>): Promise<T> {
  let result: T;
  try {
    result = await run();
  } catch (err) {
    await restore().catch((restoreErr: unknown) => {
      if (err instanceof Error) err.message += `\n(and restoring the baseline failed too: ${(restoreErr as Error).message})`;
    });
    throw err;
  }
  await restore();
  return result;
}

/** The suite's table: one line per scenario. Pure. */
export function formatTable(results: readonly ScenarioResult[]): string {
  const rows = [
    ['#', 'scenario', 'requests', 'failed', 'time to recover', 'meaning'],
    ...results.map((r) => [r.id, r.scenario, String(r.requests), String(r.failed), r.recoveryMs === null ? '-' : `${r.recoveryMs} ms`, r.recoveryMeaning]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const line = (row: string[]) => row.map((cell, i) => (i === 2 || i === 3 ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

const FAILURES_LISTED = 12;

/**
 * One line per scenario with failed requests: when each failed (ms after the scenario's first
 * request), how, and which cluster answered the requests sent just before and after it — what a
 * reader of a CI log needs to tell a lost first packet from a backend that went away too early.
 */
export function formatFailures(results: readonly ScenarioResult[]): string {
  return results
    .filter((r) => r.failed > 0)
    .map((r) => {
      const sent = [...r.records].sort((a, b) => a.at - b.at);
      const start = sent[0]?.at ?? 0;
      const answeredNear = (i: number, step: 1 | -1): string => {
        for (let j = i + step; j >= 0 && j < sent.length; j += step) if (sent[j].cluster) return sent[j].cluster!;
        return '-';
      };
      const failures = sent.flatMap((rec, i) =>
        rec.error === null ? [] : [`+${rec.at - start} ms ${rec.error} (${answeredNear(i, -1)} before, ${answeredNear(i, 1)} after)`],
      );
      const more = failures.length > FAILURES_LISTED ? `, and ${failures.length - FAILURES_LISTED} more` : '';
      return `${r.id}: failed ${failures.slice(0, FAILURES_LISTED).join(', ')}${more}`;
    })
    .join('\n');
}

/** Writes the results (without per-request records) as JSON. */
export function writeReport(path: string, results: readonly ScenarioResult[], meta: Record<string, Fact>): void {
  mkdirSync(dirname(path), { recursive: true });
  const scenarios = results.map(({ records: _records, ...rest }) => rest);
  writeFileSync(path, `${JSON.stringify({ ...meta, scenarios }, null, 2)}\n`);
}
