/**
 * Pure reading of a client's request records: failures in a window, who answered, how long until
 * traffic moved or recovered. Times are wall-clock ms (`at` = when the request was sent).
 */
import type { RequestRecord } from '../../lab/workloads/client.js';
import { clusterOf } from '../../lab/workloads/timeline.js';

export interface TimedRecord extends RequestRecord {
  /** wall-clock ms when the request was sent */
  at: number;
  /** cluster that answered, null when it failed */
  cluster: string | null;
}

/** A raw record and the wall-clock ms its line arrived. */
export interface Arrival {
  record: RequestRecord;
  arrivedAt: number;
}

/**
 * The client's start on our clock: each line arrives after its request was sent, so
 * `arrivedAt - t` bounds the start from above, and the smallest bound is within the fastest
 * answer's latency of the truth.
 */
export function clientStart(arrivals: readonly Arrival[]): number | undefined {
  return arrivals.length === 0 ? undefined : Math.min(...arrivals.map((a) => a.arrivedAt - a.record.t));
}

export function timeRecords(arrivals: readonly Arrival[]): TimedRecord[] {
  const start = clientStart(arrivals) ?? 0;
  return arrivals
    .map(({ record }) => ({ ...record, at: start + record.t, cluster: clusterOf(record.answer) }))
    .sort((a, b) => a.at - b.at);
}

const within = (r: TimedRecord, from: number, to: number) => r.at >= from && r.at < to;

export function failedCount(records: readonly TimedRecord[], from = -Infinity, to = Infinity): number {
  return records.filter((r) => r.error !== null && within(r, from, to)).length;
}

export function requestCount(records: readonly TimedRecord[], from = -Infinity, to = Infinity): number {
  return records.filter((r) => within(r, from, to)).length;
}

/** Answers per cluster in a window. */
export function answeredBy(records: readonly TimedRecord[], from = -Infinity, to = Infinity): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of records) if (r.cluster && within(r, from, to)) out[r.cluster] = (out[r.cluster] ?? 0) + 1;
  return out;
}

/** ms from `since` to the first request sent at or after it that `cluster` answered; undefined if none. */
export function firstAnswerFrom(records: readonly TimedRecord[], cluster: string, since: number): number | undefined {
  const first = records.find((r) => r.at >= since && r.cluster === cluster);
  return first ? first.at - since : undefined;
}

/**
 * ms from `since` until traffic had fully recovered: the first successful request after the last
 * failure (every later one succeeded too). 0 when nothing failed; undefined when the last request
 * failed (never recovered within the records).
 */
export function recoveryMs(records: readonly TimedRecord[], since: number): number | undefined {
  const after = records.filter((r) => r.at >= since);
  const lastFailure = after.map((r) => r.error !== null).lastIndexOf(true);
  if (lastFailure === -1) return 0;
  const recovered = after[lastFailure + 1];
  return recovered ? recovered.at - since : undefined;
}

/**
 * ms from `since` to the last request sent to (and lost in) a cluster that stopped answering:
 * after it, no request failed. 0 when none failed.
 */
export function lastFailureMs(records: readonly TimedRecord[], since: number): number {
  const failures = records.filter((r) => r.at >= since && r.error !== null);
  return failures.length === 0 ? 0 : failures[failures.length - 1].at - since;
}

/**
 * The most requests that can fail while traffic recovers: every request sent during `windowMs`
 * (plus the one in flight at each end).
 */
export function failureBound(ratePerSecond: number, windowMs: number): number {
  return Math.ceil((ratePerSecond * windowMs) / 1000) + 2;
}

/** The distinct error messages with their counts, for reports. */
export function errorKinds(records: readonly TimedRecord[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of records) if (r.error) out[r.error] = (out[r.error] ?? 0) + 1;
  return out;
}
