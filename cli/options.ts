/** Flag parsing shared by the commands (pure). */
import { InvalidArgumentError } from 'commander';

/** "2m", "90s", "1500ms", "1h" → milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (!m) throw new InvalidArgumentError(`"${text}" is not a duration such as 90s, 2m or 500ms`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * unit);
}

export function parseOutput(text: string): 'text' | 'json' {
  if (text === 'json' || text === 'text') return text;
  throw new InvalidArgumentError(`"${text}" is not an output format: use json or text`);
}

export interface GlobalFlags {
  kubeconfig?: string;
  namespace: string;
}
