/** Prometheus registry factory and text exposition, shared by both daemons. */
import { Registry, collectDefaultMetrics } from 'prom-client';

export interface MetricsRegistryOptions {
  /** Adds process/Node.js metrics (CPU, memory, event loop lag). */
  defaultMetrics?: boolean;
  /** Labels put on every series, e.g. `{ cluster: 'west' }`. */
  labels?: Record<string, string>;
}

/** Each daemon (and each test) gets its own registry: nothing global to reset between runs. */
export function createMetricsRegistry(opts: MetricsRegistryOptions = {}): Registry {
  const registry = new Registry();
  if (opts.labels) registry.setDefaultLabels(opts.labels);
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry });
  return registry;
}

/** The body and content type of a `/metrics` response. */
export async function metricsExposition(registry: Registry): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}
