import { request } from 'node:http';
import { createInterface } from 'node:readline';

/** Polls `condition` until it is true; fails naming `what` after the deadline. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export interface RawEvent {
  type: string;
  object: {
    kind?: string;
    code?: number;
    reason?: string;
    metadata?: { name?: string; resourceVersion?: string; annotations?: Record<string, string> };
  };
}

export interface RawWatch {
  status: number;
  events: RawEvent[];
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close(): void;
}

/** A watch read with plain HTTP, so tests see exactly the lines the server sends. */
export function rawWatch(url: string, path: string, query: Record<string, string>): Promise<RawWatch> {
  const target = new URL(path, url);
  for (const [key, value] of Object.entries({ watch: 'true', ...query })) target.searchParams.set(key, value);
  return new Promise((resolve, reject) => {
    const req = request(target, (res) => {
      const events: RawEvent[] = [];
      const ended = new Promise<void>((done) => res.on('close', done));
      // close() aborts the response on purpose: that error is expected.
      res.on('error', () => {});
      const lines = createInterface(res);
      lines.on('error', () => {});
      lines.on('line', (line) => events.push(JSON.parse(line) as RawEvent));
      resolve({ status: res.statusCode ?? 0, events, ended, close: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}
