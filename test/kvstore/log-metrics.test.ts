import { Counter } from 'prom-client';
import { createLogger, logLevelFromEnv } from '../../lib/log.js';
import { createMetricsRegistry, metricsExposition } from '../../lib/metrics.js';

describe('log', () => {
  it.each([
    [undefined, 'info'],
    ['debug', 'debug'],
    [' WARN ', 'warn'],
    ['silent', 'silent'],
  ])('LOG_LEVEL=%j → %s', (value, level) => {
    expect(logLevelFromEnv(value)).toBe(level);
    expect(createLogger('test', { LOG_LEVEL: value }).level).toBe(level);
  });

  it('refuses an unknown level and lists the choices', () => {
    expect(() => logLevelFromEnv('loud')).toThrow(
      'LOG_LEVEL=loud is not a log level; use one of fatal, error, warn, info, debug, trace, silent',
    );
  });
});

describe('metrics', () => {
  it('keeps registries apart and exposes the text format with default labels', async () => {
    const a = createMetricsRegistry({ labels: { cluster: 'west' } });
    const b = createMetricsRegistry();
    new Counter({ name: 'kvstore_writes_total', help: 'writes', registers: [a] }).inc(3);
    const { contentType, body } = await metricsExposition(a);
    expect(contentType).toMatch(/^text\/plain/);
    expect(body).toContain('kvstore_writes_total{cluster="west"} 3');
    expect((await metricsExposition(b)).body).not.toContain('kvstore_writes_total');
  });
});
