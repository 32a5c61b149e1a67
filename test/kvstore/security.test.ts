import { Etcd3 } from 'etcd3';
import {
  addRemoteUser,
  bootstrapEtcd,
  listRemotePeers,
  removeRemoteUser,
} from '../../clustermesh-apiserver/etcd-bootstrap.js';
import { ADMIN_USER, remoteUserName } from '../../lib/kvstore/users.js';
import {
  classifyEtcdError,
  connectEtcd,
  createEtcdClient,
  EtcdConnectionError,
} from '../../lib/kvstore/etcd.js';
import {
  clusterConfigKey,
  HEARTBEAT_KEY,
  serviceKey,
  syncedCanaryKey,
  SERVICES_PREFIX,
} from '../../lib/kvstore/keys.js';
import { createCA, issueClientCert } from '../../lib/pki.js';
import { EtcdHarness, freePort } from '../harness/etcd.js';

const SELF = 'west';
const PEER = 'east';

describe('etcd bootstrap and the remote user (real etcd, TLS, client-cert auth)', () => {
  let etcd: EtcdHarness;
  let admin: Etcd3;
  const clients: Etcd3[] = [];
  const clientFor = async (cn: string): Promise<Etcd3> => {
    const c = createEtcdClient(await etcd.clientConfig(cn));
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    etcd = await EtcdHarness.start();
    admin = await clientFor(ADMIN_USER);
    await bootstrapEtcd(admin, { cluster: SELF, peers: [PEER] });
    await bootstrapEtcd(admin, { cluster: SELF, peers: [PEER] }); // idempotent, now as admin with auth on
    await admin.put(serviceKey(SELF, 'default', 'echo')).value('{}');
    await admin.put(syncedCanaryKey(SELF, SERVICES_PREFIX)).value('now');
    await admin.put(syncedCanaryKey('other', SERVICES_PREFIX)).value('now');
    await admin.put(clusterConfigKey(SELF)).value('{"id":1}');
    await admin.put(clusterConfigKey('other')).value('{"id":2}');
    await admin.put(HEARTBEAT_KEY).value('now');
    await admin.put('cilium/private').value('secret');
  });

  afterAll(async () => {
    clients.forEach((c) => c.close());
    await etcd?.stop();
  });

  it('lets remote-<peer> read the state prefix, its canaries, its config and the heartbeat', async () => {
    const remote = await clientFor(remoteUserName(PEER));
    expect(await remote.get(serviceKey(SELF, 'default', 'echo')).string()).toBe('{}');
    expect(await remote.getAll().prefix('cilium/state/').keys()).toEqual([
      serviceKey(SELF, 'default', 'echo'),
    ]);
    expect(await remote.get(syncedCanaryKey(SELF, SERVICES_PREFIX)).string()).toBe('now');
    expect(await remote.get(clusterConfigKey(SELF)).string()).toBe('{"id":1}');
    expect(await remote.get(HEARTBEAT_KEY).string()).toBe('now');
  });

  it.each([
    [
      'write a state key',
      (c: Etcd3) =>
        c
          .put(serviceKey(SELF, 'default', 'evil'))
          .value('{}')
          .exec(),
    ],
    [
      'delete a state key',
      (c: Etcd3) =>
        c
          .delete()
          .key(serviceKey(SELF, 'default', 'echo'))
          .exec(),
    ],
    ['write its own canary', (c: Etcd3) => c.put(syncedCanaryKey(SELF, SERVICES_PREFIX)).value('x').exec()],
    ['write the heartbeat', (c: Etcd3) => c.put(HEARTBEAT_KEY).value('x').exec()],
    ['read another cluster canary', (c: Etcd3) => c.get(syncedCanaryKey('other', SERVICES_PREFIX)).exec()],
    ['read another cluster config', (c: Etcd3) => c.get(clusterConfigKey('other')).exec()],
    ['read a private key', (c: Etcd3) => c.get('cilium/private').exec()],
    ['list everything', (c: Etcd3) => c.getAll().prefix('cilium/').keys()],
    ['create users', (c: Etcd3) => c.user('mallory').create('pw')],
  ])('refuses remote-<peer> to %s with permission denied', async (_what, attempt) => {
    const remote = await clientFor(remoteUserName(PEER));
    const err = await attempt(remote).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).not.toBeNull();
    expect(classifyEtcdError(err, etcd.endpoints).kind).toBe('permission-denied');
  });

  it('refuses a client certificate whose CN is no etcd user (etcd says permission denied)', async () => {
    const stranger = await clientFor('remote-nobody');
    const err = await stranger
      .get(HEARTBEAT_KEY)
      .exec()
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(err).not.toBeNull();
    expect(classifyEtcdError(err, etcd.endpoints).kind).toBe('permission-denied');
  });

  it('refuses a client without a certificate', async () => {
    const err = await connectEtcd({
      ...(await etcd.clientConfig()),
      certPem: undefined,
      keyPem: undefined,
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(EtcdConnectionError);
    expect((err as EtcdConnectionError).kind).toBe('tls');
    expect((err as Error).message).toContain('refused the client certificate');
  });

  it('refuses a client certificate from a foreign CA', async () => {
    const foreign = await issueClientCert(await createCA('foreign-ca'), { commonName: remoteUserName(PEER) });
    const err = await connectEtcd({ ...(await etcd.clientConfig()), ...foreign }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(EtcdConnectionError);
    expect((err as EtcdConnectionError).kind).toBe('tls');
    expect((err as Error).message).toContain('refused the client certificate');
  });

  it('refuses an expired client certificate of the right CA', async () => {
    const expired = await issueClientCert(etcd.ca, {
      commonName: remoteUserName(PEER),
      notBefore: new Date(Date.now() - 2 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    });
    const err = await connectEtcd({ ...(await etcd.clientConfig()), ...expired }).then(
      () => null,
      (e: unknown) => e,
    );
    expect((err as EtcdConnectionError).kind).toBe('tls');
  });

  it('refuses a client that does not trust the server CA', async () => {
    const err = await connectEtcd({
      ...(await etcd.clientConfig()),
      caPem: (await createCA('other-ca')).certPem,
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(EtcdConnectionError);
    expect((err as EtcdConnectionError).kind).toBe('tls');
    expect((err as Error).message).toContain('server certificate is not trusted');
  });

  it('says an endpoint where nothing listens is unreachable', async () => {
    const endpoint = `https://127.0.0.1:${await freePort()}`;
    const err = await connectEtcd({ ...(await etcd.clientConfig()), endpoints: [endpoint] }).then(
      () => null,
      (e: unknown) => e,
    );
    expect((err as EtcdConnectionError).kind).toBe('unreachable');
    expect((err as Error).message).toMatch(new RegExp(`^etcd at ${endpoint} is unreachable`));
  });

  it('connects a valid remote client with connectEtcd', async () => {
    const remote = await connectEtcd(await etcd.clientConfig(remoteUserName(PEER)));
    clients.push(remote);
    expect(await remote.get(HEARTBEAT_KEY).string()).toBe('now');
  });

  it('adds and removes remote users', async () => {
    await addRemoteUser(admin, SELF, 'south');
    expect(await listRemotePeers(admin)).toEqual([PEER, 'south'].sort());
    const south = await clientFor(remoteUserName('south'));
    expect(await south.get(clusterConfigKey(SELF)).string()).toBe('{"id":1}');
    await removeRemoteUser(admin, 'south');
    await removeRemoteUser(admin, 'south');
    expect(await listRemotePeers(admin)).toEqual([PEER]);
    const err = await south
      .get(clusterConfigKey(SELF))
      .exec()
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(err).not.toBeNull();
  });
});
