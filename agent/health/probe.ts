/** One TCP connect to a backend: the only I/O of the health checker. */
import { Socket } from 'node:net';
import type { HealthTarget } from './types.js';

/** up: connected; refused: the host answered with a reset (nothing listens); down: timeout or other error. */
export type ProbeOutcome = { result: 'up' | 'refused' | 'down'; detail: string };

export function probeTcp(
  target: HealthTarget,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const finish = (outcome: ProbeOutcome): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      // A reset instead of a FIN: the prober would otherwise collect a TIME_WAIT socket per probe.
      socket.resetAndDestroy();
      resolve(outcome);
    };
    const onAbort = (): void => finish({ result: 'down', detail: 'checker closed' });
    const timer = setTimeout(
      () => finish({ result: 'down', detail: `no answer within ${timeoutMs} ms` }),
      timeoutMs,
    );
    signal.addEventListener('abort', onAbort);
    socket.once('connect', () => finish({ result: 'up', detail: 'connected' }));
    socket.once('error', (err: NodeJS.ErrnoException) =>
      finish({ result: err.code === 'ECONNREFUSED' ? 'refused' : 'down', detail: err.code ?? err.message }),
    );
    socket.connect({ host: target.addr, port: target.port });
  });
}
