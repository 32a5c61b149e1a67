/**
 * An error caused by the operator's input or environment, whose message is one line that says what
 * is wrong and what to do. The CLI prints only the message for these and exits non-zero; anything
 * else is a bug and keeps its stack.
 */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
