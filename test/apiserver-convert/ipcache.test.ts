import { decodeIPCacheEntry, encodeIPCacheEntry } from '../../lib/kvstore/codecs.js';
import { ipcacheKey } from '../../lib/kvstore/keys.js';
import { podToIPCacheEntries } from '../../clustermesh-apiserver/convert/ipcache.js';
import { pod } from './fixtures.js';

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
    const { entries, rejections } = podToIPCacheEntries(p, ID, '10.99.0.12');
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
    const { entries } = podToIPCacheEntries(pod({ hostIP: '10.99.0.13' }), ID);
    expect(entries).toEqual([expect.objectContaining({ HostIP: '10.99.0.13', NamedPorts: null })]);
  });

  it.each([
    ['host-network pod', pod({ hostNetwork: true })],
    ['succeeded pod', pod({ phase: 'Succeeded' })],
    ['failed pod', pod({ phase: 'Failed' })],
  ])('skips a %s without a rejection', (_name, p) => {
    expect(podToIPCacheEntries(p, ID, '10.99.0.12')).toEqual({ entries: [], rejections: [] });
  });

  it('rejects a pod without IP', () => {
    const { entries, rejections } = podToIPCacheEntries(
      pod({ podIPs: [], phase: 'Pending' }),
      ID,
      '10.99.0.12',
    );
    expect(entries).toEqual([]);
    expect(rejections).toEqual([
      { kind: 'Pod', object: 'default/echo-7d9f-x2k4p', reason: expect.stringContaining('has no IP yet') },
    ]);
  });

  it('rejects a pod without a valid node IP', () => {
    const { rejections } = podToIPCacheEntries(pod({}), ID, 'node-a');
    expect(rejections).toEqual([
      expect.objectContaining({ kind: 'Pod', reason: expect.stringContaining('"node-a"') }),
    ]);
  });

  it('rejects a bad pod IP while keeping the good one', () => {
    const { entries, rejections } = podToIPCacheEntries(
      pod({ podIPs: ['10.102.1.5', '10.102.1'] }),
      ID,
      '10.99.0.12',
    );
    expect(entries.map((e) => e.IP)).toEqual(['10.102.1.5']);
    expect(rejections).toEqual([
      expect.objectContaining({ reason: expect.stringContaining('"10.102.1" is not an IP address') }),
    ]);
  });
});
