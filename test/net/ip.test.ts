import { isIP } from 'node:net';
import { UserError } from '../../lib/errors.js';
import { parseCidr, parseCidrList, parseIpValue } from '../../lib/net/cidr.js';
import { canonicalIp, formatIp, isIpv4Mapped, parseIp, parseIpPrefix, requireIp } from '../../lib/net/ip.js';

describe('the one address grammar (rules in lib/net/ip.ts)', () => {
  it.each([
    ['zones', 'fe80::1%eth0'],
    ['leading zeros in an IPv4 octet', '010.1.2.3'],
    ['leading zeros in a dotted IPv6 tail', '::ffff:10.01.2.3'],
    ['a group of five hex digits', '1:2:3:4:5:6:7:00008'],
    ['"::" standing for no group', '1:2:3:4:5:6:7::8'],
    ['two "::"', '1::2::3'],
    ['a dotted quad before "::"', '1.2.3.4::'],
  ])('refuses %s', (_what, text) => {
    expect(parseIp(text)).toBeNull();
  });

  it.each([
    ['::ffff:10.0.0.1', '::ffff:a00:1', true],
    ['FD99:0:0:0::0001', 'fd99::1', false],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0', false],
    ['::1.2.3.4', '::102:304', false],
  ])('reads %s as %s (IPv4-mapped: %s)', (text, canonical, mapped) => {
    const ip = requireIp(text, 'x');
    expect(formatIp(ip.bytes)).toBe(canonical);
    expect(isIpv4Mapped(ip.bytes)).toBe(mapped);
  });

  it('accepts exactly what Node accepts, zones aside', () => {
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 48271) % 0x7fffffff; // Park-Miller: deterministic, all bits usable
      return seed % n;
    };
    const pick = (list: string[]) => list[random(list.length)];
    const pieces = ['0', '1', '00', '255', '256', '01', 'ffff', 'FfFf', '10000', 'g', ':', '::', '.', '%1'];
    const octets = ['0', '1', '00', '01', '99', '255', '256', ''];
    const v6 = () => Array.from({ length: 1 + random(12) }, () => pick(pieces)).join('');
    const dotted = () => Array.from({ length: 3 + random(3) }, () => pick(octets)).join('.');
    for (let i = 0; i < 20_000; i++) {
      const text = [v6, dotted, () => `${pick(['::', '::ffff:', '1:2:3:4:5:6:', '1::'])}${dotted()}`][random(3)]();
      const nodeAccepts = isIP(text) !== 0 && !text.includes('%');
      expect([text, parseIp(text) !== null]).toEqual([text, nodeAccepts]);
      if (nodeAccepts) expect(canonicalIp(canonicalIp(text)!)).toBe(canonicalIp(text));
    }
  });

  it('reads prefix lengths in decimal without leading zeros, within the family', () => {
    expect(parseIpPrefix('10.0.0.0/8')?.prefix).toBe(8);
    expect(parseIpPrefix('fd99::/128')?.prefix).toBe(128);
    for (const text of ['10.0.0.0/08', '10.0.0.0/33', 'fd99::/129', '10.0.0.0/', '10.0.0.0', '10.0.0.0/8/8']) {
      expect(parseIpPrefix(text)).toBeNull();
    }
  });

  it('refuses bad addresses and CIDRs with one UserError line', () => {
    expect(() => parseIpValue('fe80::1%eth0')).toThrow(UserError);
    expect(() => parseIpValue('fe80::1%eth0')).toThrow('"fe80::1%eth0" is not an IP address: write e.g. 10.99.0.1 or fd99::1');
    expect(() => parseCidr('10.0.0.0/08')).toThrow('"10.0.0.0/08" is not a CIDR: write e.g. 10.101.0.0/16 or fd99:101::/48');
    expect(() => requireIp('1.2.3', 'service vip')).toThrow('service vip: "1.2.3" is not an IPv4 or IPv6 address');
  });
});

describe('parseCidrList (the --pod-cidrs/--service-cidrs value of the agent and the kvstoremesh)', () => {
  it.each([
    ['empty', '', []],
    ['one', '10.101.0.0/16', ['10.101.0.0/16']],
    ['both families, spaces and empty items ignored', ' 10.101.0.0/16, ,fd99:0101::/48,', ['10.101.0.0/16', 'fd99:101::/48']],
  ])('%s', (_what, text, expected) => {
    expect(parseCidrList(text)).toEqual(expected);
  });

  it.each([
    ['host bits', '10.101.0.0/16,10.101.0.1/16', '"10.101.0.1/16" has host bits set: did you mean 10.101.0.0/16?'],
    ['an address', '10.101.0.1', '"10.101.0.1" is not a CIDR: write e.g. 10.101.0.0/16 or fd99:101::/48'],
  ])('refuses %s in one line naming the item', (_what, text, message) => {
    expect(() => parseCidrList(text)).toThrow(message);
  });
});
