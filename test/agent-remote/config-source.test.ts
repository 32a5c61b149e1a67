/**
 * The peer sources on real inputs: a directory updated the way the kubelet updates a Secret
 * volume (an atomic `..data` symlink swap), and the Secret itself through the Kubernetes API
 * (the official kube-apiserver, test/harness/kube-apiserver.ts).
 */
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { DirectoryPeerSource, SecretPeerSource } from '../../lib/remotes/config-source.js';
import type { PeerConfigSet } from '../../lib/remotes/peer-config.js';
import { createLogger } from '../../lib/log.js';
import { kubeBinariesRequirement, startKubeApiServer, type KubeApiServer } from '../harness/kube-apiserver.js';
import { describeRequiring } from '../harness/requirements.js';
import { waitFor } from '../kvstore/helpers.js';

const log = createLogger('agent-remote-test', { LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent' });
const PEM = (what: string) => `-----BEGIN ${what}-----\nAAAA\n-----END ${what}-----\n`;

/** The Secret's entries for `peers`, file paths pointing where the Helm chart mounts it. */
function remotesEntries(peers: Record<string, string>): Record<string, string> {
  const entries: Record<string, string> = {};
  for (const [peer, endpoint] of Object.entries(peers)) {
    const file = (suffix: string) => `/var/lib/clustermesh/remotes/${peer}.${suffix}`;
    entries[peer] = stringify({
      endpoints: [endpoint],
      'trusted-ca-file': file('etcd-client-ca.crt'),
      'cert-file': file('etcd-client.crt'),
      'key-file': file('etcd-client.key'),
    });
    entries[`${peer}.etcd-client-ca.crt`] = PEM('CERTIFICATE');
    entries[`${peer}.etcd-client.crt`] = PEM('CERTIFICATE');
    entries[`${peer}.etcd-client.key`] = PEM('PRIVATE KEY');
  }
  return entries;
}

const endpointsOf = (set: PeerConfigSet | undefined) =>
  Object.fromEntries((set?.peers ?? []).map((p) => [p.name, p.endpoints[0]]));

describe('DirectoryPeerSource on a Secret-volume layout', () => {
  let dir: string;
  let source: DirectoryPeerSource;
  const sets: PeerConfigSet[] = [];
  let generation = 0;

  /** Writes a new `..YYYY` directory and swaps `..data` to it, as the kubelet's atomic writer does. */
  async function project(entries: Record<string, string>): Promise<void> {
    const version = `..v${++generation}`;
    await mkdir(join(dir, version));
    for (const [name, text] of Object.entries(entries)) await writeFile(join(dir, version, name), text);
    await symlink(version, join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    for (const name of Object.keys(entries))
      await symlink(join('..data', name), join(dir, name)).catch(() => undefined);
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'agent-remote-dir-'));
  });
  afterAll(async () => {
    await source?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a directory that does not exist, saying what to do', async () => {
    const missing = new DirectoryPeerSource({ dir: join(dir, 'nope'), log });
    await expect(missing.start(() => undefined)).rejects.toThrow(/is not a directory; create it/);
  });

  it('delivers the initial set, then each change of the projected Secret', async () => {
    await project(remotesEntries({ east: 'https://10.99.0.2:2379' }));
    source = new DirectoryPeerSource({ dir, log, debounceMs: 20 });
    await source.start((set) => sets.push(set));
    expect(sets).toHaveLength(1);
    expect(endpointsOf(sets[0])).toEqual({ east: 'https://10.99.0.2:2379' });

    await project(remotesEntries({ east: 'https://10.99.0.5:2379', north: 'https://10.99.0.3:2379' }));
    await waitFor(
      'the swapped set',
      () =>
        JSON.stringify(endpointsOf(sets.at(-1))) ===
        JSON.stringify({ east: 'https://10.99.0.5:2379', north: 'https://10.99.0.3:2379' }),
    );

    // east's links now dangle (the new version has no east files): east is gone, north stays.
    await project(remotesEntries({ north: 'https://10.99.0.3:2379' }));
    await waitFor('east gone', () => !('east' in endpointsOf(sets.at(-1))));
    expect(endpointsOf(sets.at(-1))).toEqual({ north: 'https://10.99.0.3:2379' });
  });
});

describeRequiring('SecretPeerSource through the Kubernetes API', [kubeBinariesRequirement()], () => {
  let server: KubeApiServer;
  let core: CoreV1Api;
  let source: SecretPeerSource;
  const sets: PeerConfigSet[] = [];
  const secret = (entries: Record<string, string>) => ({
    metadata: { name: 'clustermesh-remotes', namespace: 'clustermesh' },
    data: Object.fromEntries(Object.entries(entries).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  });

  beforeAll(async () => {
    server = await startKubeApiServer();
    const kc = new KubeConfig();
    kc.loadFromString(server.kubeconfig('test'));
    core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'clustermesh' } } }).catch(() => undefined);
    source = new SecretPeerSource({ kubeConfig: kc, namespace: 'clustermesh', log, restartMinMs: 20 });
  });
  afterAll(async () => {
    await source?.stop();
    await server?.close();
  });

  it('starts with no peers when there is no Secret, then follows its creation, update (across an API server restart) and deletion', async () => {
    await source.start((set) => sets.push(set));
    expect(sets).toEqual([{ peers: [], invalid: [] }]);

    await core.createNamespacedSecret({
      namespace: 'clustermesh',
      body: secret(remotesEntries({ east: 'https://10.99.0.2:2379' })),
    });
    await waitFor('east', () => endpointsOf(sets.at(-1)).east === 'https://10.99.0.2:2379');

    await server.restartApiServer(); // every watch breaks: the source must watch again on its own
    const broken = { ...remotesEntries({ east: 'https://10.99.0.2:2379' }), north: 'endpoints: [' };
    await core.replaceNamespacedSecret({
      name: 'clustermesh-remotes',
      namespace: 'clustermesh',
      body: secret(broken),
    });
    await waitFor('north invalid', () => sets.at(-1)!.invalid.some((i) => i.name === 'north'));
    expect(sets.at(-1)!.invalid[0]!.error).toMatch(/peer "north": not valid YAML/);
    expect(endpointsOf(sets.at(-1))).toEqual({ east: 'https://10.99.0.2:2379' });

    await core.deleteNamespacedSecret({ name: 'clustermesh-remotes', namespace: 'clustermesh' });
    await waitFor('no peers', () => sets.at(-1)!.peers.length === 0 && sets.at(-1)!.invalid.length === 0);
  });
});
