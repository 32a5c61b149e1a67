import type { V1Namespace } from '@kubernetes/client-node';
import {
  IdentityAllocator,
  IdentityExhaustedError,
  MAX_LOCAL_IDENTITY,
  MIN_LOCAL_IDENTITY,
  parseExistingIdentities,
} from '../../clustermesh-apiserver/convert/identity-allocator.js';
import { decodeIdentityLabels } from '../../lib/kvstore/codecs.js';
import { identityKey } from '../../lib/kvstore/keys.js';
import { labelsOfPod } from '../../clustermesh-apiserver/convert/labels.js';
import { WEST, pod } from './fixtures.js';

describe('labelsOfPod (Cilium SortedList format)', () => {
  it('adds namespace and cluster, sorted by key, each label followed by ";"', () => {
    expect(labelsOfPod(pod({ labels: { app: 'x' }, namespace: 'ns' }), WEST)).toBe(
      'k8s:app=x;k8s:io.cilium.k8s.policy.cluster=west;k8s:io.kubernetes.pod.namespace=ns;',
    );
  });

  it('adds the service account and the namespace labels as Cilium does', () => {
    const namespace: V1Namespace = {
      metadata: { name: 'ns', labels: { 'kubernetes.io/metadata.name': 'ns', team: 'a' } },
    };
    expect(
      labelsOfPod(
        pod({ labels: { app: 'x' }, namespace: 'ns', serviceAccountName: 'echo-sa' }),
        WEST,
        namespace,
      ),
    ).toBe(
      'k8s:app=x;' +
        'k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=ns;' +
        'k8s:io.cilium.k8s.namespace.labels.team=a;' +
        'k8s:io.cilium.k8s.policy.cluster=west;' +
        'k8s:io.cilium.k8s.policy.serviceaccount=echo-sa;' +
        'k8s:io.kubernetes.pod.namespace=ns;',
    );
  });

  it.each([
    ['pod-template-hash', false],
    ['controller-revision-hash', false],
    ['statefulset.kubernetes.io/pod-name', false],
    ['topology.kubernetes.io/zone', true], // "kubernetes.io" is ignored only as a key prefix, as in Cilium
    ['kubernetes.io/arch', false],
    ['io.kubernetes.container.name', false],
    ['app.kubernetes.io/name', true],
    ['failure-domain.beta.kubernetes.io/zone', false],
    ['io.cilium.k8s.policy.cluster', false], // a pod cannot claim another cluster: Cilium's own keys are dropped
    ['annotation.foo', false],
    ['version', true],
  ])('pod label %s kept: %s', (key, kept) => {
    const labels = labelsOfPod(pod({ labels: { app: 'x', [key]: 'v' }, namespace: 'ns' }), WEST);
    expect(labels.includes(`k8s:${key}=v;`)).toBe(kept);
    expect(labels).toContain('k8s:io.cilium.k8s.policy.cluster=west;');
  });

  it('is a label list the codec decodes back to the same labels', () => {
    const labels = labelsOfPod(
      pod({ labels: { app: 'x', tier: 'web' }, namespace: 'ns', serviceAccountName: 'sa' }),
      WEST,
    );
    expect(decodeIdentityLabels(identityKey((2 << 16) | 256), labels)).toEqual({
      ok: true,
      value: {
        'k8s:app': 'x',
        'k8s:tier': 'web',
        'k8s:io.kubernetes.pod.namespace': 'ns',
        'k8s:io.cilium.k8s.policy.serviceaccount': 'sa',
        'k8s:io.cilium.k8s.policy.cluster': 'west',
      },
    });
  });

  it('does not depend on label insertion order', () => {
    const a = labelsOfPod(pod({ labels: { b: '2', a: '1', c: '3' } }), WEST);
    const b = labelsOfPod(pod({ labels: { c: '3', a: '1', b: '2' } }), WEST);
    expect(a).toBe(b);
  });
});

const base = WEST.id << 16;
const labelsOf = (app: string) =>
  `k8s:app=${app};k8s:io.cilium.k8s.policy.cluster=west;k8s:io.kubernetes.pod.namespace=default;`;

describe('IdentityAllocator', () => {
  it('allocates clusterID << 16 | local from 256, one id per label set, refcounted', () => {
    const allocator = new IdentityAllocator(WEST.id);
    expect(allocator.allocate(labelsOf('a'))).toEqual({ id: base | 256, created: true });
    expect(allocator.allocate(labelsOf('b'))).toEqual({ id: base | 257, created: true });
    expect(allocator.allocate(labelsOf('a'))).toEqual({ id: base | 256, created: false });
    expect(allocator.release(labelsOf('a'))).toBeNull(); // one pod still uses it
    expect(allocator.release(labelsOf('a'))).toBe(base | 256);
    expect(allocator.lookup(labelsOf('a'))).toBeUndefined();
    expect(allocator.allocate(labelsOf('c'))).toEqual({ id: base | 256, created: true }); // smallest free
    expect(() => allocator.release(labelsOf('a'))).toThrow(/no reference/);
  });

  it('keeps every identity across a simulated restart', () => {
    const before = new IdentityAllocator(WEST.id);
    const apps = ['a', 'b', 'c', 'd'];
    const ids = new Map(apps.map((app) => [app, before.allocate(labelsOf(app)).id]));
    before.release(labelsOf('b')); // b's last pod went away: its key is deleted before the restart
    const kvstore = apps
      .filter((app) => app !== 'b')
      .map((app) => ({ key: `cilium/state/identities/v1/id/${ids.get(app)}`, value: labelsOf(app) }));

    const restored = parseExistingIdentities(WEST.id, kvstore);
    expect(restored.discarded).toEqual([]);
    const after = new IdentityAllocator(WEST.id, restored.byLabels);
    // pods come back in a different order: each label set gets its old id, nothing is rewritten
    for (const app of ['d', 'a', 'c'])
      expect(after.allocate(labelsOf(app))).toEqual({ id: ids.get(app), created: false });
    expect(after.allocate(labelsOf('e'))).toEqual({ id: ids.get('b'), created: true }); // the freed id is reused
  });

  it('frees restored identities that no pod claimed once the initial sync is done', () => {
    const existing = new Map([
      [labelsOf('a'), base | 256],
      [labelsOf('gone'), base | 300],
    ]);
    const allocator = new IdentityAllocator(WEST.id, existing);
    allocator.allocate(labelsOf('a'));
    expect(allocator.releaseUnused()).toEqual([base | 300]);
    expect(allocator.size).toBe(1);
    expect(allocator.allocate(labelsOf('new')).id).toBe(base | 257);
  });

  it('fails with a clear error when the local range is exhausted, and recovers after a release', () => {
    const allocator = new IdentityAllocator(WEST.id);
    const count = MAX_LOCAL_IDENTITY - MIN_LOCAL_IDENTITY + 1;
    for (let i = 0; i < count; i++) allocator.allocate(labelsOf(`app${i}`));
    expect(() => allocator.allocate(labelsOf('one-too-many'))).toThrow(IdentityExhaustedError);
    expect(() => allocator.allocate(labelsOf('one-too-many'))).toThrow(
      /cluster 2 is exhausted: all 65280 identities/,
    );
    const freed = allocator.release(labelsOf('app100'));
    expect(allocator.allocate(labelsOf('one-too-many'))).toEqual({ id: freed, created: true });
    expect(freed).toBe(base | (MIN_LOCAL_IDENTITY + 100));
  });

  it('refuses restored ids outside its range', () => {
    expect(() => new IdentityAllocator(WEST.id, new Map([[labelsOf('a'), (3 << 16) | 256]]))).toThrow(
      /outside/,
    );
  });
});

describe('parseExistingIdentities', () => {
  it('keeps valid entries and discards the rest with a reason', () => {
    const restored = parseExistingIdentities(WEST.id, [
      { key: `cilium/state/identities/v1/id/${base | 300}`, value: labelsOf('dup') },
      { key: `cilium/state/identities/v1/id/${base | 260}`, value: labelsOf('dup') },
      { key: `cilium/state/identities/v1/id/${base | 261}`, value: labelsOf('ok') },
      { key: `cilium/state/identities/v1/id/${(3 << 16) | 256}`, value: labelsOf('other-cluster') },
      { key: `cilium/state/identities/v1/id/${base | 5}`, value: labelsOf('reserved') },
      { key: `cilium/state/identities/v1/id/${base | 262}`, value: 'not a label list' },
      { key: 'cilium/state/identities/v1/id/abc', value: labelsOf('bad-key') },
    ]);
    expect([...restored.byLabels]).toEqual([
      [labelsOf('dup'), base | 260],
      [labelsOf('ok'), base | 261],
    ]);
    expect(restored.discarded.map((d) => [d.key.split('/').pop(), d.reason])).toEqual([
      [String(base | 5), expect.stringContaining('outside')],
      [String(base | 262), expect.stringContaining('not a label list')],
      [String(base | 300), expect.stringContaining(`already held by identity ${base | 260}`)],
      [String((3 << 16) | 256), expect.stringContaining('outside')],
      ['abc', expect.stringContaining('not an identity key')],
    ]);
  });
});
