import { jsonPatch, mergePatch, strategicMergePatch } from '../../lab/kube-apiserver/patch.js';

describe('JSON merge patch (RFC 7386)', () => {
  it.each([
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ])('%j + %j = %j', (target, patch, expected) => {
    expect(mergePatch(target, patch)).toEqual(expected);
  });

  it('does not modify its input', () => {
    const target = { a: { b: 1 } };
    mergePatch(target, { a: { b: 2 } });
    expect(target).toEqual({ a: { b: 1 } });
  });
});

describe('strategic merge patch', () => {
  const pod = {
    spec: {
      containers: [
        { name: 'a', image: 'a:1', env: [{ name: 'X', value: '1' }], ports: [{ containerPort: 80 }] },
        { name: 'b', image: 'b:1' },
      ],
      tolerations: [{ key: 't1' }],
    },
  };

  it('merges lists of objects by name, keeping the others', () => {
    const patched = strategicMergePatch(pod, {
      spec: { containers: [{ name: 'a', image: 'a:2', env: [{ name: 'Y', value: '2' }] }] },
    });
    expect(patched).toEqual({
      spec: {
        containers: [
          {
            name: 'a',
            image: 'a:2',
            env: [
              { name: 'X', value: '1' },
              { name: 'Y', value: '2' },
            ],
            ports: [{ containerPort: 80 }],
          },
          { name: 'b', image: 'b:1' },
        ],
        tolerations: [{ key: 't1' }],
      },
    });
  });

  it('strips the directives kubectl apply emits', () => {
    const patched = strategicMergePatch(pod, {
      spec: {
        '$setElementOrder/containers': [{ name: 'a' }, { name: 'b' }],
        containers: [{ name: 'b', image: 'b:2', '$setElementOrder/env': [] }],
      },
    }) as typeof pod;
    expect(patched.spec.containers[1]).toEqual({ name: 'b', image: 'b:2' });
    expect(JSON.stringify(patched)).not.toContain('$');
  });

  it('deletes list items with $patch: delete and replaces lists without a merge key', () => {
    const patched = strategicMergePatch(pod, {
      spec: { containers: [{ name: 'b', $patch: 'delete' }], tolerations: [{ key: 't2' }] },
    }) as typeof pod;
    expect(patched.spec.containers.map((c) => c.name)).toEqual(['a']);
    expect(patched.spec.tolerations).toEqual([{ key: 't2' }]);
  });

  it('merges Service ports by port and container ports by containerPort', () => {
    const service = {
      spec: {
        ports: [
          { port: 80, targetPort: 8080 },
          { port: 443, targetPort: 8443 },
        ],
      },
    };
    expect(strategicMergePatch(service, { spec: { ports: [{ port: 443, targetPort: 9443 }] } })).toEqual({
      spec: {
        ports: [
          { port: 80, targetPort: 8080 },
          { port: 443, targetPort: 9443 },
        ],
      },
    });
  });

  it('honours $patch: replace, $retainKeys and $deleteFromPrimitiveList', () => {
    const target = { metadata: { finalizers: ['a', 'b', 'c'] }, spec: { x: 1, y: 2 }, data: { k: 'v' } };
    const patched = strategicMergePatch(target, {
      metadata: { '$deleteFromPrimitiveList/finalizers': ['b'] },
      spec: { $retainKeys: ['y', 'z'], z: 3 },
      data: { $patch: 'replace', n: 'm' },
    });
    expect(patched).toEqual({ metadata: { finalizers: ['a', 'c'] }, spec: { y: 2, z: 3 }, data: { n: 'm' } });
  });

  it('removes keys set to null, as a merge patch does', () => {
    expect(
      strategicMergePatch(
        { metadata: { labels: { a: '1', b: '2' } } },
        { metadata: { labels: { a: null } } },
      ),
    ).toEqual({
      metadata: { labels: { b: '2' } },
    });
  });
});

describe('JSON patch (RFC 6902)', () => {
  const doc = { metadata: { labels: { a: '1' }, 'x/y': 'z' }, list: [1, 2, 3] };
  it.each([
    [
      [{ op: 'add', path: '/metadata/labels/b', value: '2' }],
      { ...doc, metadata: { ...doc.metadata, labels: { a: '1', b: '2' } } },
    ],
    [[{ op: 'remove', path: '/metadata/labels/a' }], { ...doc, metadata: { ...doc.metadata, labels: {} } }],
    [[{ op: 'replace', path: '/list/1', value: 9 }], { ...doc, list: [1, 9, 3] }],
    [[{ op: 'add', path: '/list/-', value: 4 }], { ...doc, list: [1, 2, 3, 4] }],
    [[{ op: 'add', path: '/list/0', value: 0 }], { ...doc, list: [0, 1, 2, 3] }],
    [[{ op: 'remove', path: '/metadata/x~1y' }], { ...doc, metadata: { labels: { a: '1' } } }],
    [[{ op: 'copy', from: '/list/0', path: '/first' }], { ...doc, first: 1 }],
    [[{ op: 'move', from: '/list', path: '/moved' }], { metadata: doc.metadata, moved: [1, 2, 3] }],
    [
      [
        { op: 'test', path: '/list/2', value: 3 },
        { op: 'remove', path: '/list' },
      ],
      { metadata: doc.metadata },
    ],
  ])('%j', (operations, expected) => {
    expect(jsonPatch(doc, operations)).toEqual(expected);
  });

  it.each([
    [[{ op: 'test', path: '/list/0', value: 5 }], 'test failed'],
    [[{ op: 'remove', path: '/nope' }], 'does not exist'],
    [[{ op: 'replace', path: '/list/7', value: 1 }], 'out of range'],
    [[{ op: 'frobnicate', path: '/list' }], 'unknown JSON patch operation'],
  ])('fails with 422 on %j', (operations, message) => {
    expect(() => jsonPatch(doc, operations)).toThrow(message);
  });
});
