import { fieldValue, parseFieldSelector, parseLabelSelector } from '../../lab/kube-apiserver/selectors.js';
import { ApiError } from '../../lab/kube-apiserver/status.js';

const object = (labels: Record<string, string>) => ({
  metadata: { name: 'web', namespace: 'shop', labels },
  spec: { nodeName: 'n1' },
});

describe('label selectors', () => {
  const labels = { app: 'web', tier: 'front', 'example.com/zone': 'a', replicas: '3' };
  it.each([
    ['', true],
    ['app=web', true],
    ['app==web', true],
    ['app=db', false],
    ['app!=db', true],
    ['app!=web', false],
    ['missing!=x', true],
    ['app in (db, web)', true],
    ['app in (db)', false],
    ['app notin (db)', true],
    ['app notin (web,db)', false],
    ['missing notin (web)', true],
    ['missing in (web)', false],
    ['tier', true],
    ['missing', false],
    ['!missing', true],
    ['!tier', false],
    ['example.com/zone=a', true],
    ['app=web,tier=front', true],
    ['app=web,tier=back', false],
    ['app in (web,db),!missing,tier', true],
    ['replicas>2', true],
    ['replicas<3', false],
    ['app=', false],
    ['app==', false],
  ])('%j matches: %s', (selector, expected) => {
    expect(parseLabelSelector(selector)(object(labels))).toBe(expected);
  });

  it('matches objects without labels only with negative requirements', () => {
    const bare = { metadata: { name: 'x' } };
    expect(parseLabelSelector('!app')(bare)).toBe(true);
    expect(parseLabelSelector('app=web')(bare)).toBe(false);
    expect(parseLabelSelector('app=')(bare)).toBe(false);
  });

  it.each(['app===web', '=web', 'app in web', 'app in (a b)', 'a b', 'app=(web)'])(
    'rejects %j with a 400',
    (selector) => {
      let error: unknown;
      try {
        parseLabelSelector(selector);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ApiError);
      expect((error as ApiError).code).toBe(400);
    },
  );
});

describe('field selectors', () => {
  it.each([
    ['metadata.name=web', true],
    ['metadata.name==web', true],
    ['metadata.name=db', false],
    ['metadata.name!=db', true],
    ['metadata.namespace=shop,metadata.name=web', true],
    ['metadata.namespace=shop,metadata.name=db', false],
    ['spec.nodeName=n1', true],
    ['spec.missing=', true],
    ['spec.missing!=', false],
  ])('%j matches: %s', (selector, expected) => {
    expect(parseFieldSelector(selector)(object({}))).toBe(expected);
  });

  it('rejects a requirement without an operator', () => {
    expect(() => parseFieldSelector('metadata.name')).toThrow('invalid field selector');
  });

  it('reads nested values as strings, absent as ""', () => {
    expect(fieldValue({ a: { b: 3 } }, 'a.b')).toBe('3');
    expect(fieldValue({ a: null }, 'a.b')).toBe('');
  });
});
