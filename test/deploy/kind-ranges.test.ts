/** scripts/kind/ranges.mjs: Docker and kind ranges must stay clear of the host uplink and the lab. */
import { REPO_ROOT, run } from './chart-fixtures.js';
import { join } from 'node:path';

const check = (...cidrs: string[]) =>
  run(process.execPath, [join(REPO_ROOT, 'scripts/kind/ranges.mjs'), 'the test network', ...cidrs]);

describe('scripts/kind/ranges.mjs', () => {
  it.each([
    [['172.17.0.0/16'], ''],
    [['172.18.0.0/16', 'fc00:f853:ccd:e793::/64'], ''],
    [['10.100.0.0/16'], ''],
    [['10.101.5.0/24'], 'overlaps the lab range 10.101.0.0/16'],
    [['10.0.0.0/8'], 'overlaps the host uplink range 10.255.255.53/32'],
    [['192.0.2.128/25'], 'overlaps the host uplink range 192.0.2.0/24'],
    [['fd00::1/128'], 'overlaps the host uplink range fd00::/64'],
    [['fd99:102::/64'], 'overlaps the lab range fd99::/16'],
    [['172.18.0.0/16', '10.99.0.0/28'], 'overlaps the lab range 10.99.0.0/24'],
  ])('%j → %s', (cidrs, overlap) => {
    const result = check(...cidrs);
    if (overlap === '') {
      expect([result.status, result.stderr]).toEqual([0, '']);
    } else {
      expect(result.status).toBe(1);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toContain(`the test network uses`);
      expect(result.stderr).toContain(overlap);
    }
  });

  it('names a malformed range instead of passing it', () => {
    const result = check('not-a-cidr');
    expect(result.status).toBe(1);
    expect(result.stderr.trim()).toBe(
      "the test network: 'not-a-cidr' is not a CIDR: give it as address/length",
    );
  });
});
