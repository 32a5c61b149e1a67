/** Peers from the clustermesh-remotes Secret become read-only etcd users, and stop being users. */
import type { V1Secret } from '@kubernetes/client-node';
import type { Etcd3 } from 'etcd3';
import { addRemoteUser, listRemotePeers } from '../../clustermesh-apiserver/etcd-bootstrap.js';
import { REMOTES_SECRET_NAME } from '../../clustermesh-apiserver/daemon.js';
import { classifyEtcdError, createEtcdClient } from '../../lib/kvstore/etcd.js';
import { createAll, goldenCluster, update } from './cluster-fixtures.js';
import {
  CLUSTER,
  NAMESPACE,
  startDaemon,
  startEnv,
  stopEnv,
  waitFor,
  withKind,
  type TestEnv,
} from './helpers.js';

const ECHO_KEY = 'cilium/state/services/v1/west/default/echo';
const b64 = (text: string) => Buffer.from(text).toString('base64');

function remotesSecret(peers: string[]): V1Secret {
  const data: Record<string, string> = {};
  for (const peer of peers) {
    data[peer] = b64(`endpoints: [https://${peer}.example:2379]\n`);
    data[`${peer}.etcd-client.crt`] = b64('certificate');
  }
  return withKind('v1', 'Secret', { metadata: { name: REMOTES_SECRET_NAME, namespace: NAMESPACE }, data });
}

async function failure(attempt: Promise<unknown>): Promise<string> {
  const err = await attempt.then(
    () => null,
    (e: unknown) => e,
  );
  return err === null ? 'succeeded' : classifyEtcdError(err, []).kind;
}

describe('clustermesh-apiserver: peers from the remotes Secret', () => {
  let env: TestEnv;
  const remoteClient = async (peer: string): Promise<Etcd3> => {
    const client = createEtcdClient(await env.etcd.clientConfig(`remote-${peer}`));
    env.clients.push(client);
    return client;
  };
  const peersAre = (expected: string[]) =>
    waitFor(
      `etcd remote users ${expected.join(', ') || '(none)'}`,
      async () => JSON.stringify(await listRemotePeers(env.admin)) === JSON.stringify(expected),
    );

  beforeAll(async () => {
    env = await startEnv();
    await createAll(env.kube, [withKind('v1', 'Namespace', { metadata: { name: NAMESPACE } }), ...goldenCluster()]);
    // a peer left over from an earlier life of this etcd, no longer in any Secret
    await addRemoteUser(env.admin, CLUSTER.name, 'ghost');
    await (
      await startDaemon(env)
    ).ready;
  });
  afterAll(() => stopEnv(env));

  it('treats an absent Secret as no peers', async () => {
    await peersAre([]);
  });

  it('creates remote-<peer> for a new key, which can read and cannot write', async () => {
    await createAll(env.kube, [remotesSecret(['east'])]);
    await peersAre(['east']);
    const east = await remoteClient('east');
    expect(await east.get(ECHO_KEY).string()).toContain('"name":"echo"');
    expect(await failure(east.put(ECHO_KEY).value('{}').exec())).toBe('permission-denied');
    expect(await failure(east.put('cilium/state/services/v1/east/default/x').value('{}').exec())).toBe(
      'permission-denied',
    );
  });

  it('removes the user of a removed key, which can then read nothing', async () => {
    await update(env.kube, remotesSecret(['north']));
    await peersAre(['north']);
    const east = await remoteClient('east');
    expect(await failure(east.get(ECHO_KEY).exec())).toBe('permission-denied');
  });
});
