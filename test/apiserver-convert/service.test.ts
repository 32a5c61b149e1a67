import type { V1EndpointSlice } from '@kubernetes/client-node';
import { decodeClusterService, encodeClusterService } from '../../lib/kvstore/codecs.js';
import { serviceKey } from '../../lib/kvstore/keys.js';
import {
  isReadyOrServing,
  serviceToClusterService,
  type ExportContext,
} from '../../clustermesh-apiserver/convert/service.js';
import { EXPORT_BY_DEFAULT, WEST, endpoint, service, slice } from './fixtures.js';

/** The ClusterService example of DESIGN §3, byte for byte. */
const DESIGN_EXAMPLE =
  '{"cluster":"west","namespace":"default","name":"echo",' +
  '"frontends":{"10.112.0.10":{"http":{"Protocol":"TCP","Port":80}}},' +
  '"backends":{"10.12.1.5":{"http":{"Protocol":"TCP","Port":8080}}},' +
  '"labels":{},"selector":{"app":"echo"},"includeExternal":true,"shared":true,"clusterID":2}';

describe('serviceToClusterService', () => {
  it('produces the DESIGN §3 example JSON exactly for a global+shared service', () => {
    const result = serviceToClusterService(
      WEST,
      service({}),
      [slice({ endpoints: [endpoint('10.12.1.5')] })],
      EXPORT_BY_DEFAULT,
    );
    expect(encodeClusterService(result.service!)).toBe(DESIGN_EXAMPLE);
    expect(result.rejections).toEqual([]);
    // and a peer's import validation accepts it unchanged
    const decoded = decodeClusterService(serviceKey('west', 'default', 'echo'), DESIGN_EXAMPLE);
    expect(decoded).toEqual({ ok: true, value: result.service });
  });

  describe('export decision', () => {
    const nonGlobalNs: ExportContext = { ...EXPORT_BY_DEFAULT, globalNamespacesByDefault: false };
    const cases: Array<{
      name: string;
      annotations: Record<string, string>;
      context: ExportContext;
      exported: boolean;
      includeExternal?: boolean;
    }> = [
      {
        name: 'global (shared by default) is exported',
        annotations: { 'clustermesh.io/global': 'true' },
        context: EXPORT_BY_DEFAULT,
        exported: true,
        includeExternal: true,
      },
      {
        name: "Cilium's alias is honoured",
        annotations: { 'service.cilium.io/global': 'true' },
        context: EXPORT_BY_DEFAULT,
        exported: true,
        includeExternal: true,
      },
      { name: 'non-global is skipped', annotations: {}, context: EXPORT_BY_DEFAULT, exported: false },
      {
        name: 'global with shared:false is skipped',
        annotations: { 'clustermesh.io/global': 'true', 'clustermesh.io/shared': 'false' },
        context: EXPORT_BY_DEFAULT,
        exported: false,
      },
      {
        name: 'a ServiceExport exports a non-global service',
        annotations: {},
        context: { ...EXPORT_BY_DEFAULT, hasServiceExport: true },
        exported: true,
        includeExternal: false,
      },
      {
        name: 'unannotated namespace with default-global=false is skipped',
        annotations: { 'clustermesh.io/global': 'true' },
        context: nonGlobalNs,
        exported: false,
      },
      {
        name: 'namespace annotated global with default-global=false is exported',
        annotations: { 'clustermesh.io/global': 'true' },
        context: { ...nonGlobalNs, namespaceAnnotations: { 'clustermesh.io/global': 'true' } },
        exported: true,
        includeExternal: true,
      },
      {
        name: 'namespace annotated not global is skipped even with a ServiceExport',
        annotations: {},
        context: {
          ...EXPORT_BY_DEFAULT,
          hasServiceExport: true,
          namespaceAnnotations: { 'clustermesh.io/global': 'false' },
        },
        exported: false,
      },
    ];

    it.each(cases)('$name', ({ annotations, context, exported, includeExternal }) => {
      const result = serviceToClusterService(
        WEST,
        service({ annotations }),
        [slice({ endpoints: [endpoint('10.12.1.5')] })],
        context,
      );
      expect(result.rejections).toEqual([]);
      if (exported) {
        expect(result.service).toMatchObject({ shared: true, includeExternal });
        expect(result.skipped).toBeUndefined();
      } else {
        expect(result.service).toBeNull();
        expect(result.skipped).toEqual(expect.any(String));
      }
    });
  });

  describe('endpoint conditions (EndpointSlice API: ready unset = ready, serving unset = ready)', () => {
    const cases: Array<
      [string, { ready?: boolean; serving?: boolean; terminating?: boolean } | undefined, boolean]
    > = [
      ['no conditions at all', undefined, true],
      ['ready unset', {}, true],
      ['ready', { ready: true, serving: true }, true],
      ['terminating but serving', { ready: false, serving: true, terminating: true }, true],
      ['not ready, not serving', { ready: false, serving: false, terminating: true }, false],
      ['not ready, serving unset (defers to ready)', { ready: false }, false],
    ];

    it.each(cases)('%s (conditions %j) → exported: %s', (_name, conditions, exported) => {
      const ep = endpoint('10.12.1.5', conditions);
      expect(isReadyOrServing(ep)).toBe(exported);
      const result = serviceToClusterService(
        WEST,
        service({}),
        [slice({ endpoints: [ep] })],
        EXPORT_BY_DEFAULT,
      );
      expect(Object.keys(result.service!.backends)).toEqual(exported ? ['10.12.1.5'] : []);
    });
  });

  it('exports both families of a dual-stack service, canonicalising IPv6', () => {
    const svc = service({ clusterIPs: ['10.112.0.10', 'FD99:112:0:0:0:0:0:A'] });
    const slices = [
      slice({ name: 'echo-v4', endpoints: [endpoint('10.102.1.5')] }),
      slice({ name: 'echo-v6', addressType: 'IPv6', endpoints: [endpoint('fd99:102:0:1:0:0:0:5')] }),
    ];
    const result = serviceToClusterService(WEST, svc, slices, EXPORT_BY_DEFAULT);
    expect(result.rejections).toEqual([]);
    const http = { http: { Protocol: 'TCP', Port: 80 } };
    expect(result.service!.frontends).toEqual({ '10.112.0.10': http, 'fd99:112::a': http });
    expect(Object.keys(result.service!.backends)).toEqual(['10.102.1.5', 'fd99:102:0:1::5']);
  });

  it('rejects a bad endpoint address precisely while the rest converts', () => {
    const bad = slice({
      name: 'echo-bad',
      endpoints: [endpoint(['10.102.1.5', '10.102.1.999']), endpoint('fd99:102::7')],
    });
    const result = serviceToClusterService(WEST, service({}), [bad], EXPORT_BY_DEFAULT);
    expect(Object.keys(result.service!.backends)).toEqual(['10.102.1.5']);
    expect(result.rejections).toEqual([
      {
        kind: 'EndpointSlice',
        object: 'default/echo-bad',
        reason: expect.stringContaining('endpoints[0].addresses[1]: "10.102.1.999" is not an IP address'),
      },
      {
        kind: 'EndpointSlice',
        object: 'default/echo-bad',
        reason: expect.stringContaining('endpoints[1].addresses[0]: fd99:102::7 is not an IPv4 address'),
      },
    ]);
  });

  it('rejects the whole service on a malformed annotation', () => {
    const result = serviceToClusterService(
      WEST,
      service({ annotations: { 'clustermesh.io/global': 'yes' } }),
      [],
      EXPORT_BY_DEFAULT,
    );
    expect(result.service).toBeNull();
    expect(result.rejections).toEqual([
      { kind: 'Service', object: 'default/echo', reason: expect.stringContaining('clustermesh.io/global') },
    ]);
  });

  it('merges only the slices of this service, first port name wins, deterministic order', () => {
    const slices = [
      slice({
        name: 'echo-b',
        endpoints: [endpoint('10.102.1.6'), endpoint('10.102.1.5')],
        ports: [
          { name: 'http', port: 9090 },
          { name: 'metrics', port: 9100 },
        ],
      }),
      slice({
        name: 'echo-a',
        endpoints: [endpoint('10.102.1.5')],
        ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      }),
      slice({ name: 'other-a', serviceName: 'other', endpoints: [endpoint('10.102.9.9')] }),
      slice({ name: 'echo-elsewhere', namespace: 'prod', endpoints: [endpoint('10.102.8.8')] }),
    ];
    const result = serviceToClusterService(WEST, service({}), slices, EXPORT_BY_DEFAULT);
    expect(result.service!.backends).toEqual({
      '10.102.1.5': { http: { Protocol: 'TCP', Port: 8080 }, metrics: { Protocol: 'TCP', Port: 9100 } },
      '10.102.1.6': { http: { Protocol: 'TCP', Port: 9090 }, metrics: { Protocol: 'TCP', Port: 9100 } },
    });
    const reversed = serviceToClusterService(WEST, service({}), [...slices].reverse(), EXPORT_BY_DEFAULT);
    expect(encodeClusterService(reversed.service!)).toBe(encodeClusterService(result.service!));
  });

  it('reads a slice without endpoints as the API server sends it (endpoints: null): no backend, nothing rejected', () => {
    const scaledToZero = {
      ...slice({ endpoints: [] }),
      endpoints: null,
      ports: null,
    } as unknown as V1EndpointSlice;
    const slices = [scaledToZero, slice({ name: 'echo-z', endpoints: [endpoint('10.102.1.5')] })];
    const result = serviceToClusterService(WEST, service({}), slices, EXPORT_BY_DEFAULT);
    expect(result.rejections).toEqual([]);
    expect(Object.keys(result.service!.backends)).toEqual(['10.102.1.5']);
    expect(
      serviceToClusterService(WEST, service({}), [scaledToZero], EXPORT_BY_DEFAULT).service!.backends,
    ).toEqual({});
  });

  it('exports a headless service with no frontends but its backends', () => {
    const result = serviceToClusterService(
      WEST,
      service({ clusterIPs: ['None'] }),
      [slice({ endpoints: [endpoint('10.102.1.5')] })],
      EXPORT_BY_DEFAULT,
    );
    expect(result.service).toMatchObject({
      frontends: {},
      backends: { '10.102.1.5': { http: { Protocol: 'TCP', Port: 8080 } } },
    });
  });

  it('skips ExternalName services', () => {
    const result = serviceToClusterService(
      WEST,
      service({ type: 'ExternalName', clusterIPs: [] }),
      [],
      EXPORT_BY_DEFAULT,
    );
    expect(result.service).toBeNull();
    expect(result.skipped).toMatch(/ExternalName/);
  });

  it('rejects an SCTP port but keeps the others; unnamed ports are named ""', () => {
    const svc = service({
      ports: [
        { port: 53, protocol: 'UDP' },
        { name: 'sig', port: 2905, protocol: 'SCTP' },
      ],
    });
    const result = serviceToClusterService(WEST, svc, [], EXPORT_BY_DEFAULT);
    expect(result.service!.frontends).toEqual({ '10.112.0.10': { '': { Protocol: 'UDP', Port: 53 } } });
    expect(result.rejections).toEqual([
      { kind: 'Service', object: 'default/echo', reason: expect.stringContaining('SCTP') },
    ]);
  });

  it('keeps labels and selector (the codec writes them with sorted keys)', () => {
    const svc = service({ labels: { tier: 'web', app: 'echo' }, selector: { version: 'v1', app: 'echo' } });
    const json = encodeClusterService(serviceToClusterService(WEST, svc, [], EXPORT_BY_DEFAULT).service!);
    expect(json).toContain('"labels":{"app":"echo","tier":"web"},"selector":{"app":"echo","version":"v1"}');
  });
});
