import { decodeNode, encodeNode } from '../../lib/kvstore/codecs.js';
import { nodeKey } from '../../lib/kvstore/keys.js';
import { nodeToNodeRecord } from '../../clustermesh-apiserver/convert/node.js';
import { WEST, node } from './fixtures.js';

describe('nodeToNodeRecord', () => {
  it('writes the Cilium node record for a dual-stack node', () => {
    const result = nodeToNodeRecord(
      WEST,
      node({
        addresses: [
          { type: 'Hostname', address: 'west-worker' },
          { type: 'InternalIP', address: '10.99.0.12' },
          { type: 'InternalIP', address: 'FD99:0:0:99:0:0:0:12' },
          { type: 'ExternalIP', address: '10.99.0.112' },
        ],
        podCIDRs: ['10.102.1.0/24', 'fd99:102:0:1::/64'],
      }),
    );
    expect(result.rejections).toEqual([]);
    expect(decodeNode(nodeKey('west', 'west-worker'), encodeNode(result.node!))).toEqual({
      ok: true,
      value: result.node,
    });
    expect(encodeNode(result.node!)).toBe(
      '{"Name":"west-worker","Cluster":"west",' +
        '"IPAddresses":[{"Type":"InternalIP","IP":"10.99.0.12"},{"Type":"InternalIP","IP":"fd99:0:0:99::12"},{"Type":"ExternalIP","IP":"10.99.0.112"}],' +
        '"IPv4AllocCIDR":{"IP":"10.102.1.0","Mask":"////AA=="},' +
        '"IPv6AllocCIDR":{"IP":"fd99:102:0:1::","Mask":"//////////8AAAAAAAAAAA=="},' +
        '"ClusterID":2}',
    );
  });

  it.each([
    ['podCIDRs v4 only', { podCIDRs: ['10.102.1.0/24'] }, { IP: '10.102.1.0', Mask: '////AA==' }, null],
    [
      'v6 first, then v4',
      { podCIDRs: ['fd99:102:0:1::/64', '10.102.1.0/24'] },
      { IP: '10.102.1.0', Mask: '////AA==' },
      { IP: 'fd99:102:0:1::', Mask: '//////////8AAAAAAAAAAA==' },
    ],
    ['legacy spec.podCIDR', { podCIDR: '10.102.2.0/24' }, { IP: '10.102.2.0', Mask: '////AA==' }, null],
    ['no pod CIDR', {}, null, null],
  ])('%s', (_name, cidrs, v4, v6) => {
    const result = nodeToNodeRecord(WEST, node(cidrs));
    expect(result.node).toMatchObject({ IPv4AllocCIDR: v4, IPv6AllocCIDR: v6 });
  });

  it('rejects a bad pod CIDR and a bad address but keeps the rest', () => {
    const result = nodeToNodeRecord(
      WEST,
      node({
        addresses: [
          { type: 'InternalIP', address: '10.99.0.300' },
          { type: 'InternalIP', address: '10.99.0.12' },
        ],
        podCIDRs: ['10.102.1.0/40', 'fd99:102:0:1::/64'],
      }),
    );
    expect(result.node).toMatchObject({
      IPAddresses: [{ Type: 'InternalIP', IP: '10.99.0.12' }],
      IPv4AllocCIDR: null,
      IPv6AllocCIDR: { IP: 'fd99:102:0:1::' },
    });
    expect(result.rejections.map((r) => [r.kind, r.object])).toEqual([
      ['Node', 'west-worker'],
      ['Node', 'west-worker'],
    ]);
    expect(result.rejections[0].reason).toContain('"10.99.0.300"');
    expect(result.rejections[1].reason).toContain('"10.102.1.0/40"');
  });

  it('rejects a node without any usable address', () => {
    const result = nodeToNodeRecord(
      WEST,
      node({ addresses: [{ type: 'Hostname', address: 'west-worker' }] }),
    );
    expect(result.node).toBeNull();
    expect(result.rejections).toEqual([
      { kind: 'Node', object: 'west-worker', reason: expect.stringContaining('no valid InternalIP') },
    ]);
  });
});
