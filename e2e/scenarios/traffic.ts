/**
 * A client pod in east sending a bounded stream of requests to a VIP (the lab's client workload),
 * with every request's send time on our clock, so scenario events and requests share one timeline.
 */
import type { RequestRecord } from '../../lab/workloads/client.js';
import { runClient } from '../../lab/workloads/deployment.js';
import { type Arrival, type TimedRecord, timeRecords } from './analysis.js';
import { CLIENT_NODE, type E2eEnv, SERVICE_PORT } from './suite.js';
import { waitFor } from './wait.js';

export interface TrafficOptions {
  /** address to send to; default the echo Service's ClusterIP in east */
  vip: string;
  port?: number;
  /** requests per second (the client caps it at 100) */
  rate: number;
  /** hard bound on the client's run; `stop()` normally ends it sooner */
  maxSeconds: number;
  udp?: boolean;
  node?: string;
}

export interface Traffic {
  readonly rate: number;
  /** records so far, in send order */
  records(): TimedRecord[];
  /** waits until `done` holds for the records so far (bounded) */
  until(what: string, done: (records: TimedRecord[]) => boolean, timeoutMs: number): Promise<TimedRecord[]>;
  /** stops sending, waits for the answers in flight, removes the client pod; returns every record (idempotent) */
  stop(): Promise<TimedRecord[]>;
}

export async function startTraffic(env: E2eEnv, options: TrafficOptions): Promise<Traffic> {
  const node = options.node ?? CLIENT_NODE;
  const host = options.vip.includes(':') ? `[${options.vip}]` : options.vip;
  const arrivals: Arrival[] = [];
  const client = await runClient(
    env.running,
    node,
    { target: `${host}:${options.port ?? SERVICE_PORT}`, rate: options.rate, durationSeconds: options.maxSeconds, udp: options.udp, distDir: env.distDir },
    (record: RequestRecord) => arrivals.push({ record, arrivedAt: Date.now() }),
  );
  let exited = false;
  void client.done.then(() => (exited = true));
  const records = () => timeRecords(arrivals);
  let stopped: Promise<TimedRecord[]> | undefined;
  return {
    rate: options.rate,
    records,
    until: (what, done, timeoutMs) => waitFor(what, records, done, timeoutMs, 50),
    stop() {
      stopped ??= (async () => {
        if (!exited) client.child.kill('SIGTERM');
        await client.done;
        await env.running.lab.removePod(node, 'client');
        return records();
      })();
      return stopped;
    },
  };
}
