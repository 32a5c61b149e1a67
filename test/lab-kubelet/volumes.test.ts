import type { V1Pod, V1Volume } from '@kubernetes/client-node';
import { DEFAULT_TOKEN_SECONDS, referencedObjects, tokenKey, tokenRequests, volumeContent } from '../../lab/kubelet/volumes.js';

const facts = { hostIPs: ['10.99.0.3'], podIPs: ['10.101.1.2'] };
const pod = (volumes: V1Volume[]): V1Pod => ({ metadata: { name: 'p', namespace: 'cm' }, spec: { containers: [], volumes } });
const lookup = {
  secret: (ns: string, name: string) => (ns === 'cm' && name === 'certs' ? { 'tls.crt': 'CRT', 'tls.key': 'KEY', 'ca.crt': 'CA' } : undefined),
  configMap: (_ns: string, name: string) => (name === 'kube-root-ca.crt' ? { 'ca.crt': 'ROOT' } : undefined),
  token: (spec: { audience?: string; expirationSeconds: number }) => (spec.expirationSeconds === 3607 ? 'TOKEN' : undefined),
};
const content = (v: V1Volume) => volumeContent(pod([v]), facts, v, lookup);

/** what the ServiceAccount admission plugin adds to every pod */
const kubeApiAccess: V1Volume = {
  name: 'kube-api-access-x',
  projected: {
    defaultMode: 420,
    sources: [
      { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
      { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
      { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
    ],
  },
};

describe('volumeContent', () => {
  it.each([
    {
      what: 'secret, all keys, defaultMode',
      volume: { name: 'v', secret: { secretName: 'certs', defaultMode: 256 } },
      files: [
        { path: 'tls.crt', data: 'CRT', mode: 256 },
        { path: 'tls.key', data: 'KEY', mode: 256 },
        { path: 'ca.crt', data: 'CA', mode: 256 },
      ],
    },
    {
      what: 'secret items with their own mode',
      volume: { name: 'v', secret: { secretName: 'certs', items: [{ key: 'tls.crt', path: 'a/cert' }, { key: 'tls.key', path: 'key', mode: 0o400 }] } },
      files: [
        { path: 'a/cert', data: 'CRT', mode: 0o644 },
        { path: 'key', data: 'KEY', mode: 0o400 },
      ],
    },
    { what: 'optional missing secret: empty', volume: { name: 'v', secret: { secretName: 'remotes', optional: true } }, files: [] },
    {
      what: "the chart's projected certs (two secrets' items)",
      volume: {
        name: 'v',
        projected: {
          defaultMode: 288,
          sources: [
            { secret: { name: 'certs', items: [{ key: 'tls.crt', path: 'tls.crt' }] } },
            { secret: { name: 'certs', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
          ],
        },
      },
      files: [
        { path: 'tls.crt', data: 'CRT', mode: 288 },
        { path: 'ca.crt', data: 'CA', mode: 288 },
      ],
    },
    {
      what: 'kube-api-access: token, root CA, namespace',
      volume: kubeApiAccess,
      files: [
        { path: 'token', data: 'TOKEN', mode: 420 },
        { path: 'ca.crt', data: 'ROOT', mode: 420 },
        { path: 'namespace', data: 'cm', mode: 420 },
      ],
    },
    {
      what: 'downwardAPI volume',
      volume: { name: 'v', downwardAPI: { items: [{ path: 'ip', fieldRef: { fieldPath: 'status.podIP' } }] } },
      files: [{ path: 'ip', data: '10.101.1.2', mode: 0o644 }],
    },
  ])('$what', ({ volume, files }) => expect(content(volume)).toEqual({ ok: true, value: { kind: 'files', files } }));

  it.each([
    [{ name: 'h', hostPath: { path: '/sys/fs/bpf', type: 'DirectoryOrCreate' } }, { kind: 'hostPath', path: '/sys/fs/bpf', type: 'DirectoryOrCreate' }],
    [{ name: 'h', hostPath: { path: '/x' } }, { kind: 'hostPath', path: '/x', type: '' }],
    [{ name: 'e', emptyDir: {} }, { kind: 'emptyDir' }],
  ])('%j', (volume, value) => expect(content(volume)).toEqual({ ok: true, value }));

  it.each([
    [{ name: 'v', secret: { secretName: 'gone' } }, 'volume v: Secret cm/gone not found'],
    [{ name: 'v', secret: { secretName: 'certs', items: [{ key: 'nokey', path: 'x' }] } }, 'volume v: Secret cm/certs has no key nokey'],
    [{ name: 'v', configMap: { name: 'gone' } }, 'volume v: ConfigMap cm/gone not found'],
    [{ name: 'v', projected: { sources: [{ serviceAccountToken: { path: 't', expirationSeconds: 600 } }] } }, 'volume v: the service account token has not been issued yet'],
    [{ name: 'v', nfs: { server: 's', path: '/' } }, expect.stringContaining('volume v: the lab kubelet supports')],
  ])('refuses %j', (volume, message) => expect(content(volume as V1Volume)).toEqual({ ok: false, message }));
});

describe('what a pod refers to', () => {
  const p: V1Pod = {
    metadata: { name: 'p', namespace: 'cm' },
    spec: {
      volumes: [kubeApiAccess, { name: 'r', secret: { secretName: 'remotes' } }, { name: 's', projected: { sources: [{ serviceAccountToken: { path: 't', audience: 'etcd' } }] } }],
      initContainers: [{ name: 'i', envFrom: [{ configMapRef: { name: 'settings' } }] }],
      containers: [{ name: 'c', env: [{ name: 'P', valueFrom: { secretKeyRef: { name: 'remotes', key: 'k' } } }] }],
    },
  };

  it('objects, each once', () => {
    expect(referencedObjects(p)).toEqual([
      { kind: 'configMap', name: 'kube-root-ca.crt' },
      { kind: 'secret', name: 'remotes' },
      { kind: 'configMap', name: 'settings' },
    ]);
  });

  it('token requests with the default lifetime', () => {
    expect(tokenRequests(p)).toEqual([
      { audience: undefined, expirationSeconds: 3607 },
      { audience: 'etcd', expirationSeconds: DEFAULT_TOKEN_SECONDS },
    ]);
    expect(tokenKey({ audience: 'etcd', expirationSeconds: 600 })).not.toBe(tokenKey({ expirationSeconds: 600 }));
  });
});
