import { canonicalWireIp, parseCIDR, wireIp } from '../../clustermesh-apiserver/convert/ip.js';

describe('canonicalWireIp (Go net.IP text form)', () => {
  it.each([
    ['10.1.2.3', '10.1.2.3'],
    ['0.0.0.0', '0.0.0.0'],
    ['FD99:0102:0:0:0:0:0:5', 'fd99:102::5'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed (RFC 5952 §4.2.2)
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run is compressed
    ['f00d:0:0:0:a0f:0:0:0', 'f00d::a0f:0:0:0'], // first run on a tie
    ['64:ff9b::10.1.2.3', '64:ff9b::a01:203'],
  ])('%s → %s', (input, expected) => {
    expect(canonicalWireIp(input)).toBe(expected);
  });

  it.each([
    '',
    '10.1.2',
    '10.1.2.256',
    '010.1.2.3',
    '10.1.2.3.4',
    '1:2:3:4:5:6:7:8:9',
    '1::2::3',
    'fe80::1%eth0',
    '::ffff:10.1.2.3',
    'g::1',
    ':1::2',
    '1:2:3:4:5:6:7',
  ])('rejects %j', (input) => {
    expect(canonicalWireIp(input)).toBeNull();
  });
});

describe('wireIp: family and canonical text', () => {
  it.each([
    ['10.1.2.3', { family: 4, text: '10.1.2.3' }],
    ['255.255.255.255', { family: 4, text: '255.255.255.255' }],
    ['FD99:0102::5', { family: 6, text: 'fd99:102::5' }],
    ['::', { family: 6, text: '::' }],
    ['64:ff9b::10.1.2.3', { family: 6, text: '64:ff9b::a01:203' }],
    ['010.1.2.3', null],
    ['10.1.2.3 ', null],
    ['1.2.3.4.', null],
    ['::ffff:10.1.2.3', null],
  ])('%j → %j', (input, expected) => {
    expect(wireIp(input)).toEqual(expected);
  });
});

describe('parseCIDR (Go net.IPNet JSON, as in Cilium node records)', () => {
  it.each([
    // the two examples of Cilium's kvstore documentation
    ['10.11.0.0/16', 4, { IP: '10.11.0.0', Mask: '//8AAA==' }],
    ['f00d::a0f:0:0:0/112', 6, { IP: 'f00d::a0f:0:0:0', Mask: '//////////////////8AAA==' }],
    ['10.6.6.0/24', 4, { IP: '10.6.6.0', Mask: '////AA==' }],
    ['10.102.1.77/24', 4, { IP: '10.102.1.0', Mask: '////AA==' }], // host bits cleared, as net.ParseCIDR does
    ['fd99:102:0:1::/64', 6, { IP: 'fd99:102:0:1::', Mask: '//////////8AAAAAAAAAAA==' }],
    ['10.0.0.0/0', 4, { IP: '0.0.0.0', Mask: 'AAAAAA==' }],
  ])('%s', (input, family, json) => {
    expect(parseCIDR(input)).toEqual({ family, json });
  });

  it.each(['10.0.0.0', '10.0.0.0/33', 'fd99::/129', '10.0.0.0/08', 'x/8', '10.0.0.0/'])(
    'rejects %j',
    (input) => {
      expect(parseCIDR(input)).toBeNull();
    },
  );
});
