/**
 * The datapath survives its agent: with the first process's object closed, connects keep being
 * balanced; a second process reopens the pinned maps, restores the IDs, reconciles the same
 * state with zero map writes and re-attaches without stacking programs, while a client keeps
 * connecting the whole time without a single failure.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { PROGRAM_HOOKS, type ProgramName } from '../../lib/datapath/attach.js';
import type { DatapathService } from '../../lib/datapath/index.js';
import { loadNative } from '../../native/index.js';
import { waitFor } from '../harness/netns.js';
import { ADDRS, BACKEND_NAMES, createDatapathLab, type DatapathLab } from './lab.js';

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const VIP_PORT = 80;

let lab: DatapathLab;

beforeAll(async () => {
  lab = await createDatapathLab();
});

afterAll(async () => {
  await lab?.teardown();
});

function attachedPrograms(cgroupDir: string): Record<string, number[]> {
  const native = loadNative();
  const out: Record<string, number[]> = {};
  for (const name of Object.keys(PROGRAM_HOOKS) as ProgramName[]) {
    out[name] = native.progQuery(cgroupDir, native.constants()[PROGRAM_HOOKS[name]]).filter((p) => p.name === name).map((p) => p.id);
  }
  return out;
}

async function iterationsGrowBy(n: number): Promise<void> {
  const { iterations: start } = await lab.client.call<{ iterations: number }>('loopProgress');
  await waitFor(async () => (await lab.client.call<{ iterations: number }>('loopProgress')).iterations >= start + n, 20000, `${n} more connects`);
}

it('keeps balancing while the agent is down and after a second process takes over with zero writes', async () => {
  const desired: DatapathService[] = [];
  for (const family of [4, 6] as const) {
    const { vip, backends } = ADDRS[family];
    const ports: number[] = [];
    for (const [i, addr] of backends.entries()) ports.push((await lab.servers.listenTcp(addr, BACKEND_NAMES[i])).port);
    desired.push({ vip, port: VIP_PORT, proto: 'TCP', backends: backends.map((addr, i) => ({ addr, port: ports[i], state: 'active' as const, clusterId: 0 })) });
  }
  const first = lab.dp.reconcile(desired);
  expect(first.updates).toBeGreaterThan(0);
  const stateBefore = lab.dp.dump();
  const programsBefore = attachedPrograms(lab.cgroup.dir);

  await lab.client.call('loopStart', { host: ADDRS[4].vip, port: VIP_PORT });
  await iterationsGrowBy(50);
  lab.dp.close(); // the agent is gone: maps and attachments stay
  await iterationsGrowBy(100);

  const child = JSON.parse(
    execFileSync(process.execPath, ['--import', here('./ts-loader.mjs'), here('./reopen-child.ts'), lab.pinDir, lab.cgroup.dir], {
      input: JSON.stringify(desired),
      encoding: 'utf8',
    }),
  );
  await iterationsGrowBy(100);
  const loop = await lab.client.call<{ reached: Record<string, number>; errors: Record<string, number> }>('loopStop');

  expect(child.before).toEqual(stateBefore);
  expect(child.stats).toMatchObject({ updates: 0, deletes: 0, services: 2, backends: 4 });
  expect(loop.errors).toEqual({});
  expect(Object.keys(loop.reached).sort()).toEqual([...BACKEND_NAMES]);

  const programsAfter = attachedPrograms(lab.cgroup.dir);
  for (const name of Object.keys(PROGRAM_HOOKS)) {
    expect(programsAfter[name]).toHaveLength(1); // swapped, not stacked
    expect(programsAfter[name]).not.toEqual(programsBefore[name]);
  }
});
