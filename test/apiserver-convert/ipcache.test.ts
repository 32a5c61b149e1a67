import { decodeIPCacheEntry, encodeIPCacheEntry } from '../../lib/kvstore/codecs.js';
import { ipcacheKey } from '../../lib/kvstore/keys.js';
import { podToIPCacheEntries } from '../../clustermesh-apiserver/convert/ipcache.js';
import { EXPORT_BY_DEFAULT, pod } from './fixtures.js';

const ID = (2 << 16) | 256;

describe('podToIPCacheEntries', () => {
  it('writes one entry per pod IP with a null mask, the node IP and the named ports', () => {
    const p = pod({
      podIPs: ['10.102.1.5', 'FD99:102:0:1::5'],
      ports: [
        { name: 'http', containerPort: 8080 },
        { name: 'dns', containerPort: 53, protocol: 'UDP' },
        { containerPort: 9000 },
      ],
    });
    const { entries, rejections } = podToIPCacheEntries(p, ID, EXPORT_BY_DEFAULT, '10.99.0.12');
    expect(rejections).toEqual([]);
    for (const entry of entries) {
      expect(decodeIPCacheEntry(ipcacheKey(entry.IP), encodeIPCacheEntry(entry))).toEqual({
        ok: true,
        value: entry,
      });
    }
    expect(entries.map(encodeIPCacheEntry)).toEqual([
      `{"IP":"10.102.1.5","Mask":null,"HostIP":"10.99.0.12","ID":${ID},"K8sNamespace":"default","K8sPodName":"echo-7d9f-x2k4p",` +
        '"NamedPorts":[{"Name":"dns","Port":53,"Protocol":"UDP"},{"Name":"http","Port":8080,"Protocol":"TCP"}]}',
      `{"IP":"fd99:102:0:1::5","Mask":null,"HostIP":"10.99.0.12","ID":${ID},"K8sNamespace":"default","K8sPodName":"echo-7d9f-x2k4p",` +
        '"NamedPorts":[{"Name":"dns","Port":53,"Protocol":"UDP"},{"Name":"http","Port":8080,"Protocol":"TCP"}]}',
    ]);
  });

  it('uses status.hostIP when no node IP is given, and NamedPorts null without named ports', () => {
    const { entries } = podToIPCacheEntries(pod({ hostIP: '10.99.0.13' }), ID, EXPORT_BY_DEFAULT);
    expect(entries).toEqual([expect.objectContaining({ HostIP: '10.99.0.13', NamedPorts: null })]);
  });

  it.each([
    ['host-network pod', pod({ hostNetwork: true })],
    ['succeeded pod', pod({ phase: 'Succeeded' })],
    ['failed pod', pod({ phase: 'Failed' })],
  ])('skips a %s without a rejection', (_name, p) => {
    expect(podToIPCacheEntries(p, ID, EXPORT_BY_DEFAULT, '10.99.0.12')).toEqual({ entries: [], rejections: [] });
  });

  it('rejects a pod without IP', () => {
    const { entries, rejections } = podToIPCacheEntries(
      pod({ podIPs: [], phase: 'Pending' }),
      ID,
      EXPORT_BY_DEFAULT,
      '10.99.0.12',
    );
    expect(entries).toEqual([]);
    expect(rejections).toEqual([
      { kind: 'Pod', object: 'default/echo-7d9f-x2k4p', reason: expect.stringContaining('has no IP yet') },
    ]);
  });

  it('rejects a pod without a valid node IP', () => {
    const { rejections } = podToIPCacheEntries(pod({}), ID, EXPORT_BY_DEFAULT, 'node-a');
    expect(rejections).toEqual([
      expect.objectContaining({ kind: 'Pod', reason: expect.stringContaining('"node-a"') }),
    ]);
  });

  it('rejects a bad pod IP while keeping the good one', () => {
    const { entries, rejections } = podToIPCacheEntries(
      pod({ podIPs: ['10.102.1.5', '10.102.1'] }),
      ID,
      EXPORT_BY_DEFAULT,
      '10.99.0.12',
    );
    expect(entries.map((e) => e.IP)).toEqual(['10.102.1.5']);
    expect(rejections).toEqual([
      expect.objectContaining({ reason: expect.stringContaining('"10.102.1" is not an IP address') }),
    ]);
  });
});

describe('pods of namespaces that are not global', () => {
  const GLOBAL_NS = { 'clustermesh.io/global': 'true' };
  const LOCAL_NS = { 'clustermesh.io/global': 'false' };
  it.each<[string, Record<string, string> | undefined, boolean, string | null]>([
    ['unannotated namespace, global by default', undefined, true, null],
    ['unannotated namespace, not global by default', undefined, false, 'namespace is not global (unannotated namespaces are not global by default)'],
    ['namespace annotated global, not global by default', GLOBAL_NS, false, null],
    ['namespace annotated not global, global by default', LOCAL_NS, true, 'namespace is not global (annotated not global)'],
    ['Cilium’s namespace annotation: not global', { 'clustermesh.cilium.io/global': 'false' }, true, 'namespace is not global (annotated not global)'],
    ['malformed namespace annotation', { 'clustermesh.io/global': 'yes' }, true, expect.stringMatching(/^namespace .*clustermesh\.io\/global/) as unknown as string],
  ])('%s', (_name, namespaceAnnotations, globalNamespacesByDefault, withheld) => {
    const result = podToIPCacheEntries(pod({}), ID, { namespaceAnnotations, globalNamespacesByDefault }, '10.99.0.12');
    if (withheld === null) {
      expect(result.withheld).toBeUndefined();
      expect(result.entries.map((e) => e.IP)).toEqual(['10.102.1.5']);
    } else {
      expect(result).toEqual({ entries: [], withheld, rejections: [] });
    }
  });

  it('withholds before judging the pod: a broken pod of a local namespace is not rejected', () => {
    const result = podToIPCacheEntries(pod({ podIPs: [], phase: 'Pending' }), ID, { namespaceAnnotations: LOCAL_NS, globalNamespacesByDefault: true }, '10.99.0.12');
    expect(result.rejections).toEqual([]);
    expect(result.withheld).toMatch(/not global/);
  });
});
