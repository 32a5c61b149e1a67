import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { containerEnv, expandVars, expandedInvocation, fieldValue } from '../../lab/kubelet/env.js';

const pod: V1Pod = {
  metadata: { name: 'agent-x', namespace: 'cm', uid: 'u1', labels: { app: 'a' }, annotations: { note: 'n' } },
  spec: { nodeName: 'east-worker', serviceAccountName: 'sa', containers: [] },
};
const facts = { hostIPs: ['10.99.0.3', 'fd99::3'], podIPs: ['10.101.1.2', 'fd99:101:0:1::2'] };
const lookup = {
  secret: (ns: string, name: string) => (ns === 'cm' && name === 's' ? { token: 'T', user: 'u' } : undefined),
  configMap: (ns: string, name: string) => (ns === 'cm' && name === 'c' ? { level: 'debug' } : undefined),
};

describe('expandVars', () => {
  const vars = new Map([
    ['A', 'x'],
    ['EMPTY', ''],
  ]);
  it.each([
    ['$(A)', 'x'],
    ['pre-$(A)-post', 'pre-x-post'],
    ['$(A)$(A)', 'xx'],
    ['$(MISSING)', '$(MISSING)'],
    ['$$(A)', '$(A)'],
    ['$$', '$'],
    ['a$b', 'a$b'],
    ['$(EMPTY)!', '!'],
    ['$(A', '$(A'],
  ])('%s → %s', (text, expanded) => expect(expandVars(text, vars)).toBe(expanded));
});

describe('fieldValue', () => {
  it.each([
    ['metadata.name', 'agent-x'],
    ['metadata.namespace', 'cm'],
    ['metadata.uid', 'u1'],
    ['spec.nodeName', 'east-worker'],
    ['spec.serviceAccountName', 'sa'],
    ['status.hostIP', '10.99.0.3'],
    ['status.hostIPs', '10.99.0.3,fd99::3'],
    ['status.podIP', '10.101.1.2'],
    ['status.podIPs', '10.101.1.2,fd99:101:0:1::2'],
    ["metadata.labels['app']", 'a'],
    ["metadata.annotations['note']", 'n'],
    ["metadata.labels['none']", ''],
  ])('%s = %s', (path, value) => expect(fieldValue(pod, facts, path)).toEqual({ ok: true, value }));

  it('an unknown path names the supported ones', () => {
    expect(fieldValue(pod, facts, 'spec.hostname')).toEqual({ ok: false, message: expect.stringContaining('metadata.name') });
  });
});

describe('containerEnv', () => {
  const base = { KUBERNETES_SERVICE_HOST: '10.99.0.2' };
  const run = (env: V1Container['env'], envFrom?: V1Container['envFrom']) =>
    containerEnv(pod, { name: 'c', env, envFrom }, facts, lookup, base);

  it.each([
    { what: 'plain value', env: [{ name: 'X', value: '1' }], expected: { X: '1' } },
    { what: 'fieldRef', env: [{ name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }], expected: { NODE: 'east-worker' } },
    {
      what: 'later values expand earlier ones, and the base',
      env: [
        { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
        { name: 'ADDR', value: '$(IP):9878 via $(KUBERNETES_SERVICE_HOST)' },
      ],
      expected: { IP: '10.99.0.3', ADDR: '10.99.0.3:9878 via 10.99.0.2' },
    },
    { what: 'a later variable is not seen by an earlier one', env: [{ name: 'A', value: '$(B)' }, { name: 'B', value: 'b' }], expected: { A: '$(B)', B: 'b' } },
    { what: 'secretKeyRef', env: [{ name: 'T', valueFrom: { secretKeyRef: { name: 's', key: 'token' } } }], expected: { T: 'T' } },
    { what: 'configMapKeyRef', env: [{ name: 'L', valueFrom: { configMapKeyRef: { name: 'c', key: 'level' } } }], expected: { L: 'debug' } },
    { what: 'optional missing Secret: unset', env: [{ name: 'T', valueFrom: { secretKeyRef: { name: 'gone', key: 'k', optional: true } } }], expected: {} },
    { what: 'optional missing key: unset', env: [{ name: 'T', valueFrom: { secretKeyRef: { name: 's', key: 'k', optional: true } } }], expected: {} },
  ])('$what', ({ env, expected }) => {
    expect(run(env)).toEqual({ ok: true, value: new Map(Object.entries({ ...base, ...expected })) });
  });

  it('envFrom with a prefix, overridden by env', () => {
    const result = run([{ name: 'S_user', value: 'override' }], [{ secretRef: { name: 's' }, prefix: 'S_' }, { configMapRef: { name: 'c' } }]);
    expect(result).toEqual({ ok: true, value: new Map(Object.entries({ ...base, S_token: 'T', S_user: 'override', level: 'debug' })) });
  });

  it.each([
    { env: [{ name: 'T', valueFrom: { secretKeyRef: { name: 'gone', key: 'k' } } }], message: 'env T: Secret cm/gone not found' },
    { env: [{ name: 'T', valueFrom: { secretKeyRef: { name: 's', key: 'nokey' } } }], message: 'env T: Secret cm/s has no key nokey' },
    { env: [{ name: 'L', valueFrom: { configMapKeyRef: { name: 'gone', key: 'k' } } }], message: 'env L: ConfigMap cm/gone not found' },
    { env: [{ name: 'R', valueFrom: { resourceFieldRef: { resource: 'limits.cpu' } } }], message: expect.stringContaining('env R: only value') },
  ])('refuses: $message', ({ env, message }) => {
    expect(run(env)).toEqual({ ok: false, message });
  });

  it('command and args expand from the final environment', () => {
    const container = { name: 'c', command: ['node', '$(SCRIPT)'], args: ['--node-name=$(NODE_NAME)', '$$(KEEP)'] };
    const env = new Map([
      ['SCRIPT', 'main.js'],
      ['NODE_NAME', 'w1'],
    ]);
    expect(expandedInvocation(container, env)).toEqual({ command: ['node', 'main.js'], args: ['--node-name=w1', '$(KEEP)'] });
    expect(expandedInvocation({ name: 'c' }, env)).toEqual({ command: undefined, args: undefined });
  });
});
