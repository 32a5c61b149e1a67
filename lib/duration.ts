/** Durations on command lines: the agent's and the kvstoremesh's flags share one grammar. */
import { InvalidArgumentError } from 'commander';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "300ms", "30s", "5m", "1h", or a bare number of milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new InvalidArgumentError(`"${text}" is not a duration (e.g. 500ms, 30s, 5m)`);
  const ms = Math.round(Number(m[1]) * UNITS[m[2] ?? 'ms']);
  if (ms < 1) throw new InvalidArgumentError(`"${text}" must be at least 1ms`);
  return ms;
}
