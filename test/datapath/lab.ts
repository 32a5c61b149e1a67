/**
 * One test world for the socket-LB: a network namespace with backend addresses on lo (the VIPs
 * have no route there, so an untranslated connect fails with ENETUNREACH), a cgroup with our
 * programs attached, pinned maps under a unique bpffs directory, a server worker and a client
 * worker (in the cgroup). teardown() removes all of it, also after failures.
 */
import { Datapath } from '../../lib/datapath/index.js';
import { createTestCgroup, type TestCgroup } from '../harness/cgroup.js';
import { TestNetns } from '../harness/netns.js';
import { SocketWorker } from './worker-client.js';

export const ADDRS = {
  4: { vip: '10.200.100.1', backends: ['10.200.1.1', '10.200.1.2'] },
  6: { vip: 'fd99:200::100', backends: ['fd99:200::1', 'fd99:200::2'] },
} as const;

export const BACKEND_NAMES = ['A', 'B'] as const;

export interface DatapathLab {
  ns: TestNetns;
  cgroup: TestCgroup;
  pinDir: string;
  dp: Datapath;
  servers: SocketWorker;
  client: SocketWorker;
  teardown(): Promise<void>;
}

let labs = 0;

export async function createDatapathLab(): Promise<DatapathLab> {
  const lab: Partial<DatapathLab> = { pinDir: `/sys/fs/bpf/cm-dp-test-${process.pid}-${++labs}` };
  // Every step runs even if an earlier one throws (e.g. the addon is being rebuilt), so no
  // namespace or cgroup outlives the test; the first error is reported.
  lab.teardown = async () => {
    const steps = [() => lab.dp?.close(), () => Datapath.destroy(lab.pinDir!, lab.cgroup?.dir), () => lab.ns?.destroy(), () => lab.cgroup?.remove()];
    const errors: unknown[] = [];
    for (const step of steps) await Promise.resolve().then(step).catch((error: unknown) => errors.push(error));
    if (errors.length > 0) throw errors[0];
  };
  try {
    lab.ns = TestNetns.create('cm-dp');
    for (const family of [4, 6] as const) for (const addr of ADDRS[family].backends) lab.ns.addAddress(`${addr}/${family === 4 ? 32 : 128}`);
    lab.cgroup = createTestCgroup('cm-dp');
    lab.dp = await Datapath.open({ pinDir: lab.pinDir! });
    lab.dp.attach(lab.cgroup.dir);
    lab.servers = SocketWorker.start(lab.ns);
    lab.client = SocketWorker.start(lab.ns, lab.cgroup.dir);
    return lab as DatapathLab;
  } catch (error) {
    await lab.teardown().catch(() => undefined); // the original error says more
    throw error;
  }
}
