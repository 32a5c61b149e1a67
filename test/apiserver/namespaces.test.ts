/**
 * Pods of namespaces that are not global stay private: neither their ipcache entries nor their
 * identities reach etcd, and flipping a namespace's annotation withdraws and restores them.
 */
import type { ApiserverDaemon } from '../../clustermesh-apiserver/daemon.js';
import { createAll, podObj, update } from './cluster-fixtures.js';
import { startDaemon, startEnv, stopEnv, valuesUnder, waitFor, withKind, type TestEnv } from './helpers.js';

const IPCACHE = 'cilium/state/ip/v1/default/';
const IDENTITIES = 'cilium/state/identities/v1/id/';
const namespace = (name: string, global?: string) =>
  withKind('v1', 'Namespace', { metadata: { name, annotations: global === undefined ? {} : { 'clustermesh.io/global': global } } });
/** Pods are refused without their service account, which only a controller manager would create. */
async function ensureServiceAccount(env: TestEnv, namespace: string): Promise<void> {
  const account = withKind('v1', 'ServiceAccount', { metadata: { name: 'default', namespace } });
  await createAll(env.kube, [account]).catch((err: unknown) => {
    if (!/AlreadyExists|already exists/.test(JSON.stringify((err as { body?: unknown }).body ?? String(err)))) throw err;
  });
}

describe('clustermesh-apiserver: pods of namespaces that are not global', () => {
  let env: TestEnv;
  let daemon: ApiserverDaemon;

  /** pod IPs in the ipcache, and the namespaces the published identities name */
  async function published(): Promise<{ ips: string[]; namespaces: string[] }> {
    const ips = Object.keys(await valuesUnder(env.admin, IPCACHE)).map((k) => k.slice(IPCACHE.length)).sort();
    const labels = Object.values(await valuesUnder(env.admin, IDENTITIES));
    const namespaces = labels.map((l) => /io\.kubernetes\.pod\.namespace=([^;]*)/.exec(l)?.[1] ?? '?').sort();
    return { ips, namespaces };
  }

  async function until(what: string, expected: { ips: string[]; namespaces: string[] }): Promise<void> {
    await waitFor(what, async () => JSON.stringify(await published()) === JSON.stringify(expected));
  }

  beforeAll(async () => {
    env = await startEnv();
    await createAll(env.kube, [namespace('shop'), namespace('private', 'false')]);
    await ensureServiceAccount(env, 'shop');
    await ensureServiceAccount(env, 'private');
    await createAll(env.kube, [
      podObj({ name: 'cart-1', namespace: 'shop', labels: { app: 'cart' }, podIPs: ['10.102.1.60'] }),
      podObj({ name: 'vault-1', namespace: 'private', labels: { app: 'vault' }, podIPs: ['10.102.1.61'] }),
    ]);
  });
  afterAll(() => stopEnv(env));

  it('exports only the pods of global namespaces (unannotated counts as global by default)', async () => {
    daemon = await startDaemon(env);
    await daemon.ready;
    expect(await published()).toEqual({ ips: ['10.102.1.60'], namespaces: ['shop'] });
  });

  it('withdraws a namespace’s pods and identities when it is annotated not global, and restores them', async () => {
    await update(env.kube, namespace('shop', 'false'));
    await until('shop’s pod and identity to be withdrawn', { ips: [], namespaces: [] });
    await update(env.kube, namespace('private', 'true'));
    await until('private’s pod and identity to appear', { ips: ['10.102.1.61'], namespaces: ['private'] });
    await update(env.kube, namespace('shop'));
    await until('shop back', { ips: ['10.102.1.60', '10.102.1.61'], namespaces: ['private', 'shop'] });
  });
});
