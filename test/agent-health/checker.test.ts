/** The health checker against real TCP servers on 127.0.0.1 (dynamic ports). */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { HealthChecker, type HealthTarget, type HealthTransition } from '../../agent/health/index.js';

const DEADLINE_MS = 10_000;

/** A TCP server that can be killed and brought back on the same port, counting accepted connections. */
class Backend {
  connections = 0;
  port = 0;
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private readonly waiters: { count: number; resolve: () => void }[] = [];

  async start(): Promise<this> {
    const server = createServer((socket) => {
      socket.on('error', () => {}); // probes reset their connections on purpose
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      this.connections++;
      for (const w of this.waiters.filter((w) => this.connections >= w.count)) w.resolve();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: this.port }, resolve);
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
    return this;
  }

  /** Abrupt death: the listening socket goes away, so the next connect is refused. */
  async kill(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }

  target(): HealthTarget {
    return { clusterId: 2, addr: '127.0.0.1', port: this.port };
  }

  reachedConnections(count: number): Promise<void> {
    if (this.connections >= count) return Promise.resolve();
    return withDeadline(
      new Promise((resolve) => this.waiters.push({ count, resolve })),
      `${count} connections on :${this.port}`,
    );
  }
}

function withDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${DEADLINE_MS} ms waiting for ${what}`)),
      DEADLINE_MS,
    );
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function transition(checker: HealthChecker, target: HealthTarget, to: string): Promise<HealthTransition> {
  let unsubscribe: () => void = () => {};
  const seen = new Promise<HealthTransition>((resolve) => {
    unsubscribe = checker.onTransition((t) => {
      if (t.target.port === target.port && t.to === to) resolve(t);
    });
  });
  return withDeadline(seen, `${target.addr}:${target.port} → ${to}`).finally(unsubscribe);
}

const checkers: HealthChecker[] = [];
const backends: Backend[] = [];
afterEach(async () => {
  for (const c of checkers.splice(0)) c.close();
  await Promise.all(backends.splice(0).map((b) => b.kill()));
});

function newChecker(options?: ConstructorParameters<typeof HealthChecker>[0]): HealthChecker {
  const checker = new HealthChecker(options);
  checkers.push(checker);
  return checker;
}

async function newBackend(): Promise<Backend> {
  const backend = await new Backend().start();
  backends.push(backend);
  return backend;
}

it('with the defaults: healthy, killed → unhealthy (refused), back → healthy', async () => {
  const backend = await newBackend();
  const checker = newChecker();
  const target = backend.target();

  const healthy = transition(checker, target, 'healthy');
  checker.setTargets([target]);
  expect(await healthy).toMatchObject({ from: 'unknown', to: 'healthy', detail: 'connected' });

  const unhealthy = transition(checker, target, 'unhealthy');
  await backend.kill();
  expect(await unhealthy).toMatchObject({ from: 'healthy', detail: 'ECONNREFUSED' });
  expect(checker.status(target)).toBe('unhealthy');

  const recovered = transition(checker, target, 'healthy');
  await backend.start();
  expect(await recovered).toMatchObject({ from: 'unhealthy', detail: 'connected' });
  expect(checker.status(target)).toBe('healthy');
});

it('removing a target stops its probes and leaves the others untouched; adding it back restarts them', async () => {
  const [a, b] = [await newBackend(), await newBackend()];
  const checker = newChecker({ intervalMs: 20 });
  const bothHealthy = Promise.all([
    transition(checker, a.target(), 'healthy'),
    transition(checker, b.target(), 'healthy'),
  ]);
  checker.setTargets([a.target(), b.target()]);
  await bothHealthy;

  const later: HealthTransition[] = [];
  checker.onTransition((t) => later.push(t));
  checker.setTargets([b.target()]);
  const aAtRemoval = a.connections;
  expect(checker.status(a.target())).toBe('unknown');

  // Several more probes of b prove time went by; a saw at most the probe already in flight.
  await b.reachedConnections(b.connections + 5);
  expect(a.connections).toBeLessThanOrEqual(aAtRemoval + 1);
  expect(later).toEqual([]);
  expect(checker.status(b.target())).toBe('healthy');

  const aBack = transition(checker, a.target(), 'healthy');
  checker.setTargets([b.target(), a.target()]);
  expect(await aBack).toMatchObject({ from: 'unknown' });
  expect(later.map((t) => t.target.port)).toEqual([a.port]);
});

it('probes every target with a single connect slot', async () => {
  const all = await Promise.all([newBackend(), newBackend(), newBackend()]);
  const checker = newChecker({ intervalMs: 20, maxConcurrentProbes: 1 });
  const healthy = Promise.all(all.map((b) => transition(checker, b.target(), 'healthy')));
  checker.setTargets(all.map((b) => b.target()));
  await healthy;
  await Promise.all(all.map((b) => b.reachedConnections(3)));
  expect(all.map((b) => checker.status(b.target()))).toEqual(['healthy', 'healthy', 'healthy']);
});

it('refuses new targets after close', () => {
  const checker = newChecker();
  checker.close();
  expect(() => checker.setTargets([])).toThrow(/closed/);
});

describe('targets in use before standby ones (a stand-in probe records each start)', () => {
  const waitUntil = (what: string, condition: () => boolean) =>
    withDeadline(
      new Promise<void>((resolve) => {
        const poll = () => (condition() ? resolve() : setTimeout(poll, 5));
        poll();
      }),
      what,
    );
  const standbyTargets = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ clusterId: 2, addr: `10.102.${i >> 8}.${i & 255}`, port: 8080, standby: true as const }));

  function recordingChecker(options: ConstructorParameters<typeof HealthChecker>[0]) {
    const starts: string[] = [];
    const clusterIds: number[] = [];
    const checker = new HealthChecker(options, (target) => {
      starts.push(target.addr);
      clusterIds.push(target.clusterId);
      return Promise.resolve({ result: 'up', detail: 'connected' });
    });
    checkers.push(checker);
    return { checker, starts, clusterIds };
  }

  it('a target in use is probed at its own pace however many standby targets wait', async () => {
    // 50 starts/s and 201 targets: one queue would probe each target once per 4 s, 200 others between.
    const { checker, starts } = recordingChecker({ intervalMs: 100, maxProbesPerSecond: 50 });
    const standby = standbyTargets(200);
    checker.setTargets([...standby, { clusterId: 0, addr: '10.101.0.1', port: 8080 }]);
    const inUseProbes = () => starts.filter((a) => a === '10.101.0.1').length;
    await waitUntil('5 probes of the target in use', () => inUseProbes() >= 5);
    expect(starts.length - inUseProbes()).toBeLessThan(standby.length);
  });

  it('a standby target that comes into use is probed next', async () => {
    const { checker, starts } = recordingChecker({ intervalMs: 1000, maxProbesPerSecond: 100 });
    const standby = standbyTargets(500);
    checker.setTargets(standby);
    await waitUntil('the first standby probes', () => starts.length >= 3);
    const promoted = standby[400];
    checker.setTargets([...standby.filter((s) => s !== promoted), { ...promoted, standby: undefined }]);
    const before = starts.length;
    await waitUntil('a probe of the promoted target', () => starts.includes(promoted.addr));
    // at most the rate slot already taken before it
    expect(starts.indexOf(promoted.addr) - before).toBeLessThanOrEqual(1);
    expect(checker.status(promoted)).not.toBe('unhealthy');
  });

  it('probes an address:port once whichever clusters name it, and answers for all of them', async () => {
    const { checker, starts, clusterIds } = recordingChecker({ intervalMs: 50 });
    const a = { clusterId: 2, addr: '10.102.0.1', port: 8080 };
    const b = { ...a, clusterId: 3 };
    const healthy = transition(checker, a, 'healthy');
    checker.setTargets([a, b]);
    await healthy;
    await waitUntil('a few probes', () => starts.length >= 4);
    expect(checker.status(b)).toBe('healthy');
    expect(new Set(clusterIds)).toEqual(new Set([a.clusterId])); // one series, named by the first claim
  });
});
