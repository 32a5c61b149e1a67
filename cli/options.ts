/** Flag parsing shared by the commands (pure). */
import { InvalidArgumentError } from 'commander';

/** "2m", "90s", "1500ms", "1h" → milliseconds: one grammar for every command line (lib/duration.ts). */
export { parseDuration } from '../lib/duration.js';

export function parseOutput(text: string): 'text' | 'json' {
  if (text === 'json' || text === 'text') return text;
  throw new InvalidArgumentError(`"${text}" is not an output format: use json or text`);
}

export interface GlobalFlags {
  kubeconfig?: string;
  namespace: string;
}
