/**
 * Invalid objects are skipped with a logged, counted rejection while everything else syncs. The
 * API server's own validation refuses most malformed objects (an address that does not parse
 * never reaches the daemon; test/apiserver-convert/service.test.ts covers the daemon's own checks
 * of EndpointSlice addresses): these are the ones it accepts.
 */
import type { ApiserverDaemon } from '../../clustermesh-apiserver/daemon.js';
import { createAll, endpoint, eps, nodeObj, podObj, svc } from './cluster-fixtures.js';
import { metricValue, startDaemon, startEnv, stopEnv, valuesUnder, type TestEnv } from './helpers.js';

const SVC = 'cilium/state/services/v1/west/default';

describe('clustermesh-apiserver: bad input', () => {
  let env: TestEnv;
  let daemon: ApiserverDaemon;

  beforeAll(async () => {
    env = await startEnv();
    await createAll(env.kube, [
      svc({ name: 'echo' }),
      eps({
        name: 'echo-abc12',
        serviceName: 'echo',
        endpoints: [endpoint('10.102.1.5')],
      }),
      svc({ name: 'bad', clusterIPs: ['10.112.0.50'], annotations: { 'clustermesh.io/global': 'maybe' } }),
      nodeObj({ name: 'west-worker' }),
      podObj({ name: 'echo-1', podIPs: ['10.102.1.5'] }),
      podObj({ name: 'noip', podIPs: [] }),
    ]);
    daemon = await startDaemon(env);
    await daemon.ready;
  });
  afterAll(() => stopEnv(env));

  it('syncs the valid objects and parts', async () => {
    expect(Object.keys(await valuesUnder(env.admin, `${SVC}/`))).toEqual([`${SVC}/echo`]);
    expect(Object.keys(JSON.parse((await env.admin.get(`${SVC}/echo`).string())!).backends)).toEqual([
      '10.102.1.5',
    ]);
    expect(Object.keys(await valuesUnder(env.admin, 'cilium/state/ip/v1/default/'))).toEqual([
      'cilium/state/ip/v1/default/10.102.1.5',
    ]);
    expect(Object.keys(await valuesUnder(env.admin, 'cilium/state/nodes/v1/'))).toHaveLength(1);
  });

  it.each([
    ['Service', 'default/bad', /clustermesh\.io\/global/],
    ['Pod', 'default/noip', /no IP/],
  ])('logs and counts the rejected %s', async (kind, object, reason) => {
    expect(
      await metricValue(daemon.healthUrl, 'clustermesh_apiserver_rejections_total', 'kind', kind),
    ).toBeGreaterThanOrEqual(1);
    const logged = env.logs.map(
      (line) => JSON.parse(line) as { kind?: string; object?: string; msg: string; level: number },
    );
    const line = logged.find((l) => l.kind === kind && l.object === object);
    expect(line?.msg).toMatch(reason);
    expect(line?.level).toBe(40); // warn
  });
});
