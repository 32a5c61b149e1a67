import { UserError } from '../../lib/errors.js';
import { cidrsOverlap, formatCidr, nthAddress, nthSubnet, parseCidr } from '../../lib/net/cidr.js';
import { type RouteOperation, type RouteSpec, routeArgs } from '../../lib/routes.js';

describe('CIDR arithmetic', () => {
  const canonical: Array<[string, string]> = [
    ['10.101.0.0/16', '10.101.0.0/16'],
    ['fd99:0:0:99::/64', 'fd99:0:0:99::/64'],
    ['fd99:0000:0000:0099:0000:0000:0000:0000/64', 'fd99:0:0:99::/64'],
    ['fd99:111::/108', 'fd99:111::/108'],
    ['::ffff:10.0.0.0/104', '::ffff:a00:0/104'],
    ['1:0:0:2:0:0:0:0/64', '1:0:0:2::/64'],
    ['0.0.0.0/0', '0.0.0.0/0'],
  ];
  it.each(canonical)('%s reads back as %s', (text, expected) => {
    expect(formatCidr(parseCidr(text))).toBe(expected);
  });

  const overlaps: Array<[string, string, boolean]> = [
    ['10.101.0.0/16', '10.101.7.0/24', true],
    ['10.101.0.0/16', '10.102.0.0/16', false],
    ['10.0.0.0/8', '10.255.255.53/32', true],
    ['fd99:101::/48', 'fd99:101:0:5::/64', true],
    ['fd99:101::/48', 'fd99:102::/48', false],
    ['10.0.0.0/8', 'fd99::/16', false],
  ];
  it.each(overlaps)('%s overlaps %s: %s', (a, b, expected) => {
    expect(cidrsOverlap(parseCidr(a), parseCidr(b))).toBe(expected);
    expect(cidrsOverlap(parseCidr(b), parseCidr(a))).toBe(expected);
  });

  it('numbers subnets and addresses, and refuses past the end', () => {
    expect(formatCidr(nthSubnet(parseCidr('10.101.0.0/16'), 24, 255))).toBe('10.101.255.0/24');
    expect(formatCidr(nthSubnet(parseCidr('fd99:101::/48'), 64, 3))).toBe('fd99:101:0:3::/64');
    expect(nthAddress(parseCidr('fd99:0:0:99::/64'), 17)).toBe('fd99:0:0:99::11');
    expect(() => nthSubnet(parseCidr('10.101.0.0/23'), 24, 2)).toThrow(/has no \/24 number 2/);
    expect(() => nthAddress(parseCidr('10.0.0.0/30'), 4)).toThrow(/has no address number 4/);
  });
});

describe('routeArgs', () => {
  const good: Array<[RouteOperation, RouteSpec, string]> = [
    [
      'add',
      { destination: '10.102.0.0/16', via: '10.99.0.5', device: 'eth0' },
      'route add 10.102.0.0/16 via 10.99.0.5 dev eth0',
    ],
    [
      'replace',
      { destination: 'fd99:102::/48', via: 'fd99:0:0:99::5' },
      'route replace fd99:102::/48 via fd99:0:0:99::5',
    ],
    ['delete', { destination: '10.102.0.0/16' }, 'route del 10.102.0.0/16'],
    ['add', { destination: '10.101.1.7', device: 'lxc0123' }, 'route add 10.101.1.7/32 dev lxc0123'],
    ['add', { destination: 'fd99:111::/108', type: 'blackhole' }, 'route add blackhole fd99:111::/108'],
    [
      'add',
      { destination: '10.1.0.0/16', via: '10.9.0.1', device: 'eth0', onlink: true, metric: 10 },
      'route add 10.1.0.0/16 via 10.9.0.1 dev eth0 onlink metric 10',
    ],
  ];
  it.each(good)('%s %j', (operation, route, expected) => {
    expect(routeArgs(operation, route).join(' ')).toBe(expected);
  });

  const bad: Array<[string, RouteSpec, RegExp]> = [
    ['a default route', { destination: '0.0.0.0/0', via: '10.99.0.1' }, /refusing to route 0\.0\.0\.0\/0/],
    ['an IPv6 default route', { destination: '::/0', device: 'eth0' }, /refusing to route ::\/0/],
    [
      'mixed families',
      { destination: '10.102.0.0/16', via: 'fd99::1' },
      /not an IPv4 address like the destination/,
    ],
    ['no next hop', { destination: '10.102.0.0/16' }, /needs "via" or "device"/],
    [
      'a blackhole with a next hop',
      { destination: '10.102.0.0/16', type: 'blackhole', via: '10.0.0.1' },
      /takes no "via"/,
    ],
    [
      'an interface name with a space',
      { destination: '10.102.0.0/16', device: 'eth0 table 5' },
      /not an interface name/,
    ],
    [
      'an interface name too long',
      { destination: '10.102.0.0/16', device: 'a-very-long-ifname' },
      /not an interface name/,
    ],
    ['host bits', { destination: '10.102.0.1/16', device: 'eth0' }, /did you mean 10\.102\.0\.0\/16/],
    ['garbage', { destination: '10.102.0.0/16; rm -rf /', device: 'eth0' }, /not a CIDR/],
    ['a bad metric', { destination: '10.102.0.0/16', device: 'eth0', metric: -1 }, /metric -1/],
  ];
  it.each(bad)('refuses %s', (_name, route, expected) => {
    expect(() => routeArgs('add', route)).toThrow(UserError);
    expect(() => routeArgs('add', route)).toThrow(expected);
  });
});
