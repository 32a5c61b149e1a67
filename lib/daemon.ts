/**
 * How the daemons' entry points (clustermesh-apiserver/main.ts, its kvstoremesh/main.ts,
 * agent/main.ts) start and stop: a bad flag or file is one line on stderr and a non-zero exit, and
 * SIGTERM/SIGINT stop the daemon cleanly and exit 0.
 */
import { type Command, CommanderError } from 'commander';
import { errorMessage } from './errors.js';

/** Writes `name: <first line of the error>` to stderr and exits 1. */
export function exitWithError(name: string, err: unknown): never {
  process.stderr.write(`${name}: ${errorMessage(err).split('\n')[0]}\n`);
  process.exit(1);
}

/** Parses argv into program, or exits with commander's code (it has printed the reason or the help). */
export function parseOrExit(program: Command, argv: string[]): void {
  try {
    program.exitOverride().parse(argv);
  } catch (err) {
    process.exit(err instanceof CommanderError ? err.exitCode : 1);
  }
}

/**
 * On the first SIGTERM or SIGINT runs stop, then exits 0 (or, if stop fails, exits 1 with one line
 * on stderr). A second signal meets the default handler and ends the process at once.
 */
export function exitOnSignals(name: string, stop: () => Promise<unknown>): void {
  const onSignal = () =>
    void stop().then(
      () => process.exit(0),
      (err: unknown) => exitWithError(name, err),
    );
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}
