/** lab/topology/host.ts: telling a process from a later one that got its pid. */
import { spawn } from 'node:child_process';
import {
  formatProcessIdentity,
  isRunning,
  parseProcStat,
  parseProcessIdentity,
  processIdentity,
} from '../../lab/topology/host.js';

describe('parseProcStat', () => {
  const tail = (state: string, startTime: string) =>
    `${state} 1 1 1 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 ${startTime} 1000 200 18446744073709551615`;
  const cases: Array<[string, string, ReturnType<typeof parseProcStat>]> = [
    ['a sleeping process', `42 (etcd) ${tail('S', '3425336')}`, { pid: 42, startTime: '3425336' }],
    ['a command with spaces and parentheses', `42 (a (b) c) ${tail('R', '17')}`, { pid: 42, startTime: '17' }],
    ['a stopped process still runs', `42 (kubelet) ${tail('T', '99')}`, { pid: 42, startTime: '99' }],
    ['a zombie does not', `42 (node) ${tail('Z', '99')}`, undefined],
    ['a dead one does not', `42 (node) ${tail('X', '99')}`, undefined],
    ['a line cut short', '42 (node) S 1 1', undefined],
    ['not a stat line', 'garbage', undefined],
  ];
  it.each(cases)('%s', (_name, stat, expected) => {
    expect(parseProcStat(42, stat)).toEqual(expected);
  });
});

describe('parseProcessIdentity', () => {
  const cases: Array<[string, ReturnType<typeof parseProcessIdentity>]> = [
    ['1234 5678\n', { pid: 1234, startTime: '5678' }],
    ['1234', undefined], // a bare pid (a file of an older version): nothing it can be checked against
    ['', undefined],
    ['1 5678', undefined], // init is never a lab process
    ['12 34 56', undefined],
    ['-5 10', undefined],
  ];
  it.each(cases)('%j', (text, expected) => {
    expect(parseProcessIdentity(text)).toEqual(expected);
  });

  it('reads back what formatProcessIdentity writes', () => {
    const own = processIdentity(process.pid)!;
    expect(parseProcessIdentity(formatProcessIdentity(own))).toEqual(own);
  });
});

describe('isRunning on real processes', () => {
  it('holds for a living process, and not for its pid with another start time', () => {
    const own = processIdentity(process.pid)!;
    expect(isRunning(own)).toBe(true);
    expect(isRunning({ pid: process.pid, startTime: String(Number(own.startTime) + 1) })).toBe(false);
  });

  it('stops holding once the process has exited', async () => {
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    await new Promise((resolve) => child.once('spawn', resolve));
    const identity = processIdentity(child.pid!)!;
    expect(isRunning(identity)).toBe(true);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(isRunning(identity)).toBe(false);
  });
});
