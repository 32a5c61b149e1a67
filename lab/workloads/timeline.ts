/** What the demo shows, computed from the client's request records (pure). */
import type { RequestRecord } from './client.js';

export function clusterOf(answer: string | null): string | null {
  return answer ? answer.split('/')[0] : null;
}

/** One second of requests: answers per cluster and failures. */
export function secondLine(records: RequestRecord[], second: number): { byCluster: Record<string, number>; failed: number; total: number } {
  const inSecond = records.filter((r) => Math.floor(r.t / 1000) === second);
  const byCluster: Record<string, number> = {};
  for (const r of inSecond) {
    const cluster = clusterOf(r.answer);
    if (cluster) byCluster[cluster] = (byCluster[cluster] ?? 0) + 1;
  }
  return { byCluster, failed: inSecond.filter((r) => r.error).length, total: inSecond.length };
}

/** ms from `since` to the first request at or after it answered by `cluster`; undefined if none. */
export function switchTime(records: RequestRecord[], since: number, cluster: string): number | undefined {
  const first = records.filter((r) => r.t >= since && clusterOf(r.answer) === cluster).sort((a, b) => a.t - b.t)[0];
  return first ? first.t - since : undefined;
}

export interface DemoSummary {
  total: number;
  failed: number;
  failedAfterRemoval: number;
  failedAfterRestore: number;
  failoverMs?: number;
  failbackMs?: number;
  answeredBy: Record<string, number>;
  /** error → how many requests failed with it */
  errors: Record<string, number>;
}

export function summarise(records: RequestRecord[], local: string, remote: string, removedAt: number, restoredAt: number): DemoSummary {
  const answeredBy: Record<string, number> = {};
  const errors: Record<string, number> = {};
  for (const r of records) {
    const c = clusterOf(r.answer);
    if (c) answeredBy[c] = (answeredBy[c] ?? 0) + 1;
    if (r.error) errors[r.error] = (errors[r.error] ?? 0) + 1;
  }
  const failed = (from: number, to: number) => records.filter((r) => r.error && r.t >= from && r.t < to).length;
  return {
    total: records.length,
    failed: records.filter((r) => r.error).length,
    failedAfterRemoval: failed(removedAt, restoredAt),
    failedAfterRestore: failed(restoredAt, Infinity),
    failoverMs: switchTime(records, removedAt, remote),
    failbackMs: switchTime(records, restoredAt, local),
    answeredBy,
    errors,
  };
}
