import { execFileSync } from 'node:child_process';

describe('toolchain', () => {
  it('has the real kubectl and helm unpacked by setup', () => {
    expect(execFileSync('.tools/kubectl', ['version', '--client', '-o', 'json']).toString()).toContain('"major": "1"');
    expect(execFileSync('.tools/helm', ['version', '--short']).toString()).toMatch(/^v\d+\./);
  });
});
