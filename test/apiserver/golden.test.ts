/** A small cluster → exactly the expected kvstore keys and JSON; then single changes → single writes. */
import type { ApiserverDaemon } from '../../clustermesh-apiserver/daemon.js';
import {
  API_LABELS,
  ECHO_LABELS,
  createAll,
  endpoint,
  eps,
  goldenCluster,
  update,
} from './cluster-fixtures.js';
import { snapshot, startDaemon, startEnv, stopEnv, valuesUnder, waitFor, type TestEnv } from './helpers.js';

const SVC = 'cilium/state/services/v1/west/default';
const IDS = 'cilium/state/identities/v1/id';
const IP = 'cilium/state/ip/v1/default';
const MIN_ID = (2 << 16) | 256;

const ipcacheEntry = (ip: string, hostIP: string, id: number, pod: string, namedPorts: unknown = null) => ({
  IP: ip,
  Mask: null,
  HostIP: hostIP,
  ID: id,
  K8sNamespace: 'default',
  K8sPodName: pod,
  NamedPorts: namedPorts,
});

describe('clustermesh-apiserver: golden sync of a small cluster', () => {
  let env: TestEnv;
  let daemon: ApiserverDaemon;

  beforeAll(async () => {
    env = await startEnv();
    await createAll(env.kube, goldenCluster());
    daemon = await startDaemon(env);
    await daemon.ready;
  });
  afterAll(() => stopEnv(env));

  it('publishes exactly the expected keys', async () => {
    const keys = [...(await snapshot(env.admin)).keys()].sort();
    const ids = Object.keys(await valuesUnder(env.admin, `${IDS}/`));
    expect(ids.sort()).toEqual([`${IDS}/${MIN_ID}`, `${IDS}/${MIN_ID + 1}`]);
    expect(keys).toEqual(
      [
        'cilium/.heartbeat',
        'cilium/cluster-config/west',
        ...ids,
        `${IP}/10.102.1.5`,
        `${IP}/10.102.2.7`,
        `${IP}/10.102.2.9`,
        'cilium/state/nodes/v1/west/west-worker',
        'cilium/state/nodes/v1/west/west-worker2',
        `${SVC}/api`,
        `${SVC}/echo`,
        'cilium/synced/west/cilium/state/identities/v1',
        'cilium/synced/west/cilium/state/ip/v1',
        'cilium/synced/west/cilium/state/nodes/v1',
        'cilium/synced/west/cilium/state/services/v1',
      ].sort(),
    );
  });

  it('writes the cluster config and the services as Cilium does', async () => {
    expect(await env.admin.get('cilium/cluster-config/west').string()).toBe(
      '{"id":2,"capabilities":{"syncedCanaries":true,"maxConnectedClusters":255}}',
    );
    expect(await env.admin.get(`${SVC}/echo`).string()).toBe(
      '{"cluster":"west","namespace":"default","name":"echo",' +
        '"frontends":{"10.112.0.10":{"http":{"Protocol":"TCP","Port":80}}},' +
        '"backends":{"10.102.1.5":{"http":{"Protocol":"TCP","Port":8080}},"10.102.2.7":{"http":{"Protocol":"TCP","Port":8080}}},' +
        '"labels":{},"selector":{"app":"echo"},"includeExternal":true,"shared":true,"clusterID":2}',
    );
    expect(JSON.parse((await env.admin.get(`${SVC}/api`).string())!)).toEqual({
      cluster: 'west',
      namespace: 'default',
      name: 'api',
      frontends: { '10.112.0.20': { grpc: { Protocol: 'TCP', Port: 9090 } } },
      backends: { '10.102.2.9': { grpc: { Protocol: 'TCP', Port: 9091 } } },
      labels: {},
      selector: { app: 'api' },
      includeExternal: true,
      shared: true,
      clusterID: 2,
    });
  });

  it('writes nodes with their addresses and pod CIDRs', async () => {
    expect(await env.admin.get('cilium/state/nodes/v1/west/west-worker').string()).toBe(
      '{"Name":"west-worker","Cluster":"west","IPAddresses":[{"Type":"InternalIP","IP":"10.99.0.12"}],' +
        '"IPv4AllocCIDR":{"IP":"10.102.1.0","Mask":"////AA=="},"IPv6AllocCIDR":null,"ClusterID":2}',
    );
    expect(JSON.parse((await env.admin.get('cilium/state/nodes/v1/west/west-worker2').string())!)).toEqual({
      Name: 'west-worker2',
      Cluster: 'west',
      IPAddresses: [{ Type: 'InternalIP', IP: '10.99.0.13' }],
      IPv4AllocCIDR: { IP: '10.102.2.0', Mask: '////AA==' },
      IPv6AllocCIDR: { IP: 'fd99:102:0:2::', Mask: '//////////8AAAAAAAAAAA==' },
      ClusterID: 2,
    });
  });

  it('gives one identity per label set and maps every pod IP to it', async () => {
    const identities = await valuesUnder(env.admin, `${IDS}/`);
    const idOf = (labels: string) =>
      Number(
        Object.entries(identities)
          .find(([, value]) => value === labels)?.[0]
          .split('/')
          .pop(),
      );
    expect(Object.values(identities).sort()).toEqual([API_LABELS, ECHO_LABELS].sort());
    const ipcache = Object.fromEntries(
      Object.entries(await valuesUnder(env.admin, `${IP}/`)).map(([k, v]) => [k, JSON.parse(v)]),
    );
    expect(ipcache).toEqual({
      [`${IP}/10.102.1.5`]: ipcacheEntry('10.102.1.5', '10.99.0.12', idOf(ECHO_LABELS), 'echo-1'),
      [`${IP}/10.102.2.7`]: ipcacheEntry('10.102.2.7', '10.99.0.13', idOf(ECHO_LABELS), 'echo-2'),
      [`${IP}/10.102.2.9`]: ipcacheEntry('10.102.2.9', '10.99.0.13', idOf(API_LABELS), 'api-1', [
        { Name: 'grpc', Port: 9091, Protocol: 'TCP' },
      ]),
    });
  });

  it('turns one EndpointSlice change into exactly one etcd write', async () => {
    const before = await snapshot(env.admin, 'cilium/state/');
    const writesBefore = writes(daemon);
    await update(
      env.kube,
      eps({
        name: 'echo-abc12',
        serviceName: 'echo',
        endpoints: [endpoint('10.102.1.5'), endpoint('10.102.1.10')],
      }),
    );
    await waitFor('the new backend in etcd', async () =>
      ((await env.admin.get(`${SVC}/echo`).string()) ?? '').includes('10.102.1.10'),
    );
    await Promise.all(Object.values(daemon.stores).map((s) => s.drain()));
    const after = await snapshot(env.admin, 'cilium/state/');
    const changed = [...after].filter(([key, { rev }]) => before.get(key)?.rev !== rev).map(([key]) => key);
    expect(changed).toEqual([`${SVC}/echo`]);
    expect(writes(daemon)).toEqual({ ...writesBefore, services: writesBefore.services + 1 });
    expect(JSON.parse((await env.admin.get(`${SVC}/echo`).string())!).backends).toEqual({
      '10.102.1.5': { http: { Protocol: 'TCP', Port: 8080 } },
      '10.102.1.10': { http: { Protocol: 'TCP', Port: 8080 } },
    });
  });

  it('deletes the key of a deleted Service', async () => {
    const deletesBefore = daemon.stores.services.counters.deletes;
    await env.kube.objects.delete({ apiVersion: 'v1', kind: 'Service' }, 'default', 'api');
    await waitFor(
      'the api service key to go',
      async () => (await env.admin.get(`${SVC}/api`).string()) === null,
    );
    await daemon.stores.services.drain(); // the counters move when the transaction's answer is in
    expect(daemon.stores.services.counters.deletes).toBe(deletesBefore + 1);
    expect(await env.admin.get(`${SVC}/echo`).string()).not.toBeNull();
  });
});

function writes(daemon: ApiserverDaemon): Record<string, number> {
  return Object.fromEntries(
    Object.entries(daemon.stores).map(([name, store]) => [name, store.counters.writes]),
  );
}
