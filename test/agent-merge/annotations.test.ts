import {
  parseNamespaceGlobal,
  parseServicePolicy,
  shouldExport,
  type ServicePolicy,
} from '../../lib/k8s/annotations.js';

const GLOBAL: ServicePolicy = {
  global: true,
  shared: true,
  affinity: 'none',
  minHealthyLocal: 0,
  clusterPreference: [],
};
const NOT_GLOBAL: ServicePolicy = {
  global: false,
  shared: false,
  affinity: 'none',
  minHealthyLocal: 0,
  clusterPreference: [],
};

describe('parseServicePolicy: accepted values', () => {
  const cases: [string, Record<string, string> | undefined, ServicePolicy][] = [
    ['no annotations', undefined, NOT_GLOBAL],
    ['global false', { 'clustermesh.io/global': 'false' }, NOT_GLOBAL],
    ['global true, shared defaults to true', { 'clustermesh.io/global': 'true' }, GLOBAL],
    ['case-insensitive like Cilium', { 'clustermesh.io/global': 'TRUE' }, GLOBAL],
    ['Cilium name', { 'service.cilium.io/global': 'true' }, GLOBAL],
    ['legacy Cilium name', { 'io.cilium/global-service': 'True' }, GLOBAL],
    [
      'shared false',
      { 'clustermesh.io/global': 'true', 'clustermesh.io/shared': 'False' },
      { ...GLOBAL, shared: false },
    ],
    [
      'legacy shared alias',
      { 'clustermesh.io/global': 'true', 'io.cilium/shared-service': 'false' },
      { ...GLOBAL, shared: false },
    ],
    [
      'affinity local defaults min-healthy-local to 1',
      { 'clustermesh.io/global': 'true', 'service.cilium.io/affinity': 'Local' },
      { ...GLOBAL, affinity: 'local', minHealthyLocal: 1 },
    ],
    [
      'affinity remote',
      { 'clustermesh.io/global': 'true', 'io.cilium/service-affinity': 'remote' },
      { ...GLOBAL, affinity: 'remote' },
    ],
    [
      'min-healthy-local with affinity local',
      {
        'clustermesh.io/global': 'true',
        'clustermesh.io/affinity': 'local',
        'clustermesh.io/min-healthy-local': '3',
      },
      { ...GLOBAL, affinity: 'local', minHealthyLocal: 3 },
    ],
    [
      'cluster preference, spaces after commas allowed',
      { 'clustermesh.io/global': 'true', 'clustermesh.io/cluster-preference': 'west, north' },
      { ...GLOBAL, clusterPreference: ['west', 'north'] },
    ],
    [
      'not global: the other annotations are ignored, even malformed (as in Cilium)',
      {
        'clustermesh.io/shared': 'maybe',
        'clustermesh.io/affinity': 'closest',
        'clustermesh.io/min-healthy-local': 'x',
      },
      NOT_GLOBAL,
    ],
  ];
  it.each(cases)('%s', (_name, annotations, expected) => {
    const result = parseServicePolicy(annotations);
    expect(result).toEqual({ ok: true, value: expected, warnings: [] });
  });
});

describe('parseServicePolicy: errors name the annotation and the accepted values', () => {
  const cases: [string, Record<string, string>, RegExp][] = [
    [
      'yes',
      { 'clustermesh.io/global': 'yes' },
      /clustermesh\.io\/global: "yes" is not valid; accepted values: "true", "false"/,
    ],
    ['trailing space', { 'clustermesh.io/global': 'true ' }, /clustermesh\.io\/global: "true " is not valid/],
    ['empty', { 'service.cilium.io/global': '' }, /service\.cilium\.io\/global: "" is not valid/],
    ['1', { 'io.cilium/global-service': '1' }, /io\.cilium\/global-service: "1"/],
    [
      'shared',
      { 'clustermesh.io/global': 'true', 'clustermesh.io/shared': 'no' },
      /clustermesh\.io\/shared: "no".*"true", "false"/,
    ],
    [
      'affinity',
      { 'clustermesh.io/global': 'true', 'clustermesh.io/affinity': 'closest' },
      /clustermesh\.io\/affinity: "closest" is not valid; accepted values: "local", "remote", "none"/,
    ],
    ...['0', '-1', '2.5', 'two', '70000', ' 2'].map((v): [string, Record<string, string>, RegExp] => [
      `min-healthy-local ${JSON.stringify(v)}`,
      {
        'clustermesh.io/global': 'true',
        'clustermesh.io/affinity': 'local',
        'clustermesh.io/min-healthy-local': v,
      },
      /min-healthy-local: .* accepted values: an integer from 1 to 65535/,
    ]),
    [
      'min-healthy-local without affinity local',
      { 'clustermesh.io/global': 'true', 'clustermesh.io/min-healthy-local': '2' },
      /min-healthy-local applies only to affinity "local" \(this Service has "none"\); set clustermesh\.io\/affinity: "local"/,
    ],
    ...['west,,north', 'West', 'west,west', '', 'a_b', 'x'.repeat(33)].map(
      (v): [string, Record<string, string>, RegExp] => [
        `cluster-preference ${JSON.stringify(v)}`,
        { 'clustermesh.io/global': 'true', 'clustermesh.io/cluster-preference': v },
        /cluster-preference: .* accepted values: distinct cluster names separated by commas/,
      ],
    ),
  ];
  it.each(cases)('%s', (_name, annotations, message) => {
    const result = parseServicePolicy(annotations);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error).toMatch(message);
      expect(result.error).not.toContain('\n');
    }
  });
});

describe('parseServicePolicy: ours win over aliases, disagreements are warnings', () => {
  it('ours decides; a disagreeing alias is reported', () => {
    const result = parseServicePolicy({
      'clustermesh.io/global': 'true',
      'service.cilium.io/global': 'false',
    });
    expect(result).toEqual({
      ok: true,
      value: GLOBAL,
      warnings: [
        'annotation service.cilium.io/global: "false" is ignored: clustermesh.io/global: "true" takes precedence',
      ],
    });
  });

  it('an agreeing alias (any case) is silent', () => {
    const result = parseServicePolicy({
      'clustermesh.io/global': 'true',
      'io.cilium/global-service': 'TRUE',
    });
    expect(result.ok && result.warnings).toEqual([]);
  });

  it('a malformed alias under a valid winner is a warning, not an error', () => {
    const result = parseServicePolicy({ 'clustermesh.io/global': 'true', 'io.cilium/global-service': 'yes' });
    expect(result.ok).toBe(true);
    expect(result.ok && result.warnings).toEqual([
      expect.stringMatching(/io\.cilium\/global-service: "yes" is ignored/),
    ]);
  });

  it('service.cilium.io beats io.cilium (Cilium’s own order)', () => {
    const result = parseServicePolicy({
      'service.cilium.io/global': 'true',
      'service.cilium.io/affinity': 'local',
      'io.cilium/service-affinity': 'remote',
    });
    expect(result.ok && result.value.affinity).toBe('local');
    expect(result.ok && result.warnings).toHaveLength(1);
  });

  it('our malformed value is an error even when an alias is valid', () => {
    const result = parseServicePolicy({ 'clustermesh.io/global': 'yes', 'service.cilium.io/global': 'true' });
    expect(result).toEqual({
      ok: false,
      error: expect.stringMatching(/^annotation clustermesh\.io\/global: "yes"/),
    });
  });
});

describe('parseNamespaceGlobal', () => {
  it.each([
    [undefined, undefined],
    [{}, undefined],
    [{ 'clustermesh.io/global': 'true' }, true],
    [{ 'clustermesh.cilium.io/global': 'false' }, false],
    [{ 'clustermesh.io/global': 'false', 'clustermesh.cilium.io/global': 'true' }, false],
  ])('%j → %s', (annotations, expected) => {
    const result = parseNamespaceGlobal(annotations);
    expect(result.ok && result.value).toBe(expected);
  });

  it('rejects a malformed value', () => {
    expect(parseNamespaceGlobal({ 'clustermesh.cilium.io/global': 'on' })).toEqual({
      ok: false,
      error: expect.stringMatching(/clustermesh\.cilium\.io\/global: "on" is not valid/),
    });
  });
});

describe('shouldExport', () => {
  const NS_GLOBAL = { 'clustermesh.io/global': 'true' };
  const NS_NOT_GLOBAL = { 'clustermesh.cilium.io/global': 'false' };
  const cases: [
    string,
    ServicePolicy,
    Record<string, string> | undefined,
    boolean,
    boolean,
    boolean,
    RegExp,
  ][] = [
    [
      'global, unannotated namespace, default global',
      GLOBAL,
      undefined,
      false,
      true,
      true,
      /global and shared/,
    ],
    [
      'global, unannotated namespace, default not global',
      GLOBAL,
      undefined,
      false,
      false,
      false,
      /not global by default/,
    ],
    [
      'global, namespace annotated global, default not global',
      GLOBAL,
      NS_GLOBAL,
      false,
      false,
      true,
      /global and shared/,
    ],
    [
      'global, namespace annotated not global',
      GLOBAL,
      NS_NOT_GLOBAL,
      false,
      true,
      false,
      /annotated not global/,
    ],
    [
      'global but shared false',
      { ...GLOBAL, shared: false },
      undefined,
      false,
      true,
      false,
      /shared is false/,
    ],
    [
      'shared false beats a ServiceExport',
      { ...GLOBAL, shared: false },
      undefined,
      true,
      true,
      false,
      /shared is false/,
    ],
    ['ServiceExport alone', NOT_GLOBAL, undefined, true, true, true, /ServiceExport/],
    [
      'ServiceExport in a namespace that is not global',
      NOT_GLOBAL,
      NS_NOT_GLOBAL,
      true,
      true,
      false,
      /namespace is not global/,
    ],
    ['neither', NOT_GLOBAL, undefined, false, true, false, /neither global nor exported/],
    [
      'malformed namespace annotation',
      GLOBAL,
      { 'clustermesh.io/global': 'yes' },
      false,
      true,
      false,
      /namespace annotation/,
    ],
  ];
  it.each(cases)('%s', (_name, policy, ns, hasExport, byDefault, expected, reason) => {
    const decision = shouldExport(policy, ns, hasExport, byDefault);
    expect(decision.export).toBe(expected);
    expect(decision.reason).toMatch(reason);
  });
});
