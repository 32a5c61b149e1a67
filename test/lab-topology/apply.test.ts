/**
 * A real small lab on 10.210.0.0/16 and fd99:210::/48 (outside ARCHITECTURE's default plan, so a
 * default lab may run at the same time), prefix tp<pid>. Every packet stays inside its namespaces.
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, down, up } from '../../lab/topology/apply.js';
import { cgroup2Mount, listNetns } from '../../lab/topology/host.js';
import { type LabPlan, type LabSpec, findNode, planLab, podAddresses } from '../../lab/topology/plan.js';
import { formatStatus, isGone, labStatus } from '../../lab/topology/status.js';
import { addRoute, deleteRoute, replaceRoute } from '../../lib/routes.js';

const prefix = `tp${process.pid}`;
const spec: LabSpec = {
  prefix,
  bridgeSubnetV4: '10.210.0.0/24',
  bridgeSubnetV6: 'fd99:210::/64',
  clusters: [
    {
      name: 'ta',
      id: 1,
      workers: 2,
      podCIDRv4: '10.210.16.0/20',
      podCIDRv6: 'fd99:210:0:1000::/52',
      serviceCIDRv4: '10.210.64.0/20',
      serviceCIDRv6: 'fd99:210:0:2000::/108',
    },
    {
      name: 'tb',
      id: 2,
      workers: 1,
      podCIDRv4: '10.210.32.0/20',
      podCIDRv6: 'fd99:210:0:3000::/52',
      serviceCIDRv4: '10.210.80.0/20',
      serviceCIDRv6: 'fd99:210:0:4000::/108',
    },
  ],
};
const LAB_RANGE_PATTERN = /10\.210\.|fd99:210:/;
const CHILD_ENV = { PATH: process.env.PATH };

const SERVER = `
const net = require('net');
const server = net.createServer((c) => c.end(process.argv[1]));
server.listen(0, '::', () => console.log(server.address().port));`;

const CLIENT = `
const net = require('net');
const socket = net.connect({ host: process.argv[1], port: Number(process.argv[2]) });
let data = '';
socket.setTimeout(3000, () => { console.log('ERR TIMEOUT'); socket.destroy(); });
socket.on('data', (d) => (data += d));
socket.on('end', () => console.log('OK ' + data));
socket.on('error', (e) => console.log('ERR ' + e.code));`;

const PROBE_OWN_CGROUP = `
const fs = require('fs');
const own = fs.readFileSync('/proc/self/cgroup', 'utf8').match(/^0::(.*)$/m)[1];
console.log(own + ' ' + fs.existsSync(process.argv[1] + own + '/cgroup.procs'));`;

const spawned: ChildProcess[] = [];

function output(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    child.stdout!.on('data', (d: Buffer) => (text += d));
    child.on('error', reject);
    child.on('close', () => resolve(text.trim()));
  });
}

function runNode(lab: Lab, target: string, script: string, args: string[]): Promise<string> {
  return output(lab.spawnIn(target, process.execPath, ['-e', script, ...args], { env: CHILD_ENV }));
}

/** Starts an echo server answering with `reply`; resolves with its port once it listens. */
async function startServer(
  lab: Lab,
  target: string,
  reply: string,
): Promise<{ child: ChildProcess; port: number }> {
  const child = lab.spawnIn(target, process.execPath, ['-e', SERVER, reply], { env: CHILD_ENV });
  spawned.push(child);
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
    child.once('exit', (code) => reject(new Error(`server in ${target} exited with ${code}`)));
  });
  return { child, port };
}

function ipJson(args: string[]): Array<Record<string, unknown>> {
  return JSON.parse(execFileSync('ip', ['-j', ...args]).toString() || '[]');
}

function processAlive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** Everything of the lab visible on the host, as text lines: empty when the lab is gone. */
function leftovers(plan: LabPlan): string[] {
  const mount = cgroup2Mount()!;
  const routes = [
    ...ipJson(['-4', 'route', 'show', 'table', 'all']),
    ...ipJson(['-6', 'route', 'show', 'table', 'all']),
  ];
  return [
    ...listNetns().filter((n) => n.startsWith(`${prefix}-`)),
    ...ipJson(['link', 'show'])
      .map((l) => String(l.ifname))
      .filter((n) => n.startsWith(prefix)),
    ...routes
      .map((r) => `${r.type ?? ''} ${r.dst} dev ${r.dev ?? ''}`)
      .filter((r) => LAB_RANGE_PATTERN.test(r) || r.includes(prefix)),
    ...[join(mount, plan.cgroupRoot), `/run/clustermesh-lab/${prefix}.json`].filter((p) => existsSync(p)),
    ...spawned.filter((c) => c.pid !== undefined && processAlive(c.pid)).map((c) => `process ${c.pid}`),
  ];
}

describe('lab topology on the host (real namespaces)', () => {
  const plan = planLab(spec);
  let lab: Lab;
  const pods = {
    a1: { node: 'ta-worker', name: 'a1', ...podAddresses(findNode(plan, 'ta-worker'), 1) },
    a2: { node: 'ta-worker2', name: 'a2', ...podAddresses(findNode(plan, 'ta-worker2'), 1) },
    b1: { node: 'tb-worker', name: 'b1', ...podAddresses(findNode(plan, 'tb-worker'), 1) },
  };

  beforeAll(async () => {
    lab = await up(plan);
    for (const pod of Object.values(pods)) await lab.addPod(pod.node, pod.name, pod.ipv4, pod.ipv6);
  });

  afterAll(async () => {
    await down(prefix);
  });

  it('carries real TCP between pods of one cluster on different nodes, IPv4 and IPv6', async () => {
    const { port } = await startServer(lab, 'ta-worker2/a2', 'hello from a2');
    for (const address of [pods.a2.ipv4, pods.a2.ipv6]) {
      expect(await runNode(lab, 'ta-worker/a1', CLIENT, [address, String(port)])).toBe('OK hello from a2');
    }
  });

  it('sends an untranslated service VIP nowhere: the connect fails as unreachable', async () => {
    for (const vip of ['10.210.64.10', 'fd99:210:0:2000::a']) {
      expect(await runNode(lab, 'ta-worker/a1', CLIENT, [vip, '80'])).toMatch(/^ERR E(NET|HOST)UNREACH$/);
    }
  });

  it('leaves cross-cluster routes to the mesh: unreachable until lib/routes adds them', async () => {
    const { port } = await startServer(lab, 'tb-worker/b1', 'hello from b1');
    expect(await runNode(lab, 'ta-worker/a1', CLIENT, [pods.b1.ipv4, String(port)])).toMatch(
      /^ERR E(NET|HOST)UNREACH$/,
    );

    const [taWorker, tbWorker] = [findNode(plan, 'ta-worker'), findNode(plan, 'tb-worker')];
    const there = { destination: spec.clusters[1].podCIDRv4, via: tbWorker.ipv4, device: 'eth0' };
    const back = { destination: spec.clusters[0].podCIDRv4, via: taWorker.ipv4, device: 'eth0' };
    await addRoute(there, { netns: taWorker.netns });
    await replaceRoute(back, { netns: tbWorker.netns });
    await replaceRoute(back, { netns: tbWorker.netns }); // idempotent
    expect(await runNode(lab, 'ta-worker/a1', CLIENT, [pods.b1.ipv4, String(port)])).toBe('OK hello from b1');

    expect(await deleteRoute(there, { netns: taWorker.netns })).toBe(true);
    expect(await deleteRoute(there, { netns: taWorker.netns })).toBe(false);
    expect(await runNode(lab, 'ta-worker/a1', CLIENT, [pods.b1.ipv4, String(port)])).toMatch(
      /^ERR E(NET|HOST)UNREACH$/,
    );
  });

  it('routes lab addresses in the root namespace into the lab veth or a blackhole, never the uplink', () => {
    const bridgeNode = execFileSync('ip', ['route', 'get', plan.nodes[1].ipv4]).toString();
    expect(bridgeNode).toContain(`dev ${plan.host.device}`);
    expect(execFileSync('ip', ['route', 'get', plan.nodes[1].ipv6]).toString()).toContain(
      `dev ${plan.host.device}`,
    );
    for (const address of [pods.a1.ipv4, pods.b1.ipv6, '10.210.64.10', 'fd99:210:0:4000::1']) {
      // the kernel refuses a lookup that ends in a blackhole (EINVAL) instead of naming a device
      expect(() => execFileSync('ip', ['route', 'get', address], { stdio: 'pipe' })).toThrow(
        /Invalid argument/,
      );
      const family = address.includes(':') ? '-6' : '-4';
      const [mostSpecific] = ipJson([family, 'route', 'show', 'match', address]).sort(
        (a, b) => prefixLength(b.dst) - prefixLength(a.dst),
      );
      expect(mostSpecific.type).toBe('blackhole');
    }
  });

  it('puts processes in their worker cgroup and keeps the cgroup mount visible inside the namespace', async () => {
    const mount = cgroup2Mount()!;
    const [own, visible] = (await runNode(lab, 'ta-worker2/a2', PROBE_OWN_CGROUP, [mount])).split(' ');
    expect(join(mount, own)).toBe(lab.nodeCgroupDir('ta-worker2'));
    expect(visible).toBe('true');
  });

  it('shows namespaces and their processes in status', async () => {
    const status = await labStatus(prefix);
    expect(status.up).toBe(true);
    expect(
      status.namespaces.find((n) => n.name === `${prefix}-tb-worker-b1`)?.processes.length,
    ).toBeGreaterThan(0);
    expect(formatStatus(status)).toContain(`node   ${prefix}-ta-control-plane`);
    expect(Lab.open(prefix).plan).toEqual(plan); // another process (the CLI) finds the running lab
    expect(() => Lab.open(`tz${process.pid}`)).toThrow(/no lab "tz\d+" is up/);
  });

  it('refuses a second lab whose ranges overlap this one while this one runs, leaving nothing of it', async () => {
    const otherPrefix = `tq${process.pid}`;
    const other = planLab({ ...spec, prefix: otherPrefix });
    await expect(up(other)).rejects.toThrow(
      `bridge subnet 10.210.0.0/24 overlaps lab "${prefix}"'s bridge subnet 10.210.0.0/24, and that lab runs: bring it down first (clustermesh lab down --prefix ${prefix})`,
    );
    expect(isGone(await labStatus(otherPrefix))).toBe(true);
  });

  it('cleans a crashed run first: its processes, pods and routes are gone and the new lab works', async () => {
    const orphan = await startServer(lab, 'ta-worker/a1', 'left behind');
    lab = await up(plan); // as if the process that built the lab had died without `down`
    expect(processAlive(orphan.child.pid!)).toBe(false);
    expect(listNetns().filter((n) => n.startsWith(`${prefix}-`) && n.endsWith('-a1'))).toEqual([]);
    expect(
      ipJson(['-4', 'route', 'show', 'type', 'blackhole']).filter(
        (r) => r.dst === spec.clusters[0].podCIDRv4,
      ),
    ).toHaveLength(1);

    await lab.addPod(pods.a1.node, pods.a1.name, pods.a1.ipv4, pods.a1.ipv6);
    await lab.addPod(pods.a2.node, pods.a2.name, pods.a2.ipv4, pods.a2.ipv6);
    const { port } = await startServer(lab, 'ta-worker2/a2', 'fresh');
    expect(await runNode(lab, 'ta-worker/a1', CLIENT, [pods.a2.ipv6, String(port)])).toBe('OK fresh');

    await lab.removePod(pods.a2.node, pods.a2.name);
    expect(existsSync(`/var/run/netns/${prefix}-ta-worker2-a2`)).toBe(false);
    await lab.addPod(pods.a2.node, pods.a2.name, pods.a2.ipv4, pods.a2.ipv6); // same name again at once
  });

  it('removes a crashed lab of another prefix on the same ranges (nothing of it runs), then builds', async () => {
    await down(prefix);
    lab = await up(plan);
    // the process that built it is gone, and its pid went to another process (this one)
    const stateFile = `/run/clustermesh-lab/${prefix}.json`;
    const state = JSON.parse(readFileSync(stateFile, 'utf8'));
    writeFileSync(stateFile, JSON.stringify({ ...state, builder: { pid: process.pid, startTime: '1' } }));
    const other = planLab({ ...spec, prefix: `tq${process.pid}` });

    const survivor = await startServer(lab, 'tb-worker', 'still running');
    await expect(up(other)).rejects.toThrow(`overlaps lab "${prefix}"'s bridge subnet 10.210.0.0/24, and that lab runs`);
    survivor.child.kill('SIGKILL');
    await new Promise((resolve) => survivor.child.once('exit', resolve));

    const otherLab = await up(other);
    try {
      expect(isGone(await labStatus(prefix))).toBe(true);
      expect((await labStatus(other.prefix)).up).toBe(true);
    } finally {
      await down(otherLab.plan.prefix);
    }
    lab = await up(plan);
  });

  it('down leaves nothing, and down twice is fine', async () => {
    await startServer(lab, 'tb-worker', 'a node process');
    expect(leftovers(plan).length).toBeGreaterThan(0);
    await down(prefix);
    expect(leftovers(plan)).toEqual([]);
    await down(prefix);
    expect(leftovers(plan)).toEqual([]);
    expect(isGone(await labStatus(prefix))).toBe(true);
  });
});

function prefixLength(dst: unknown): number {
  const text = String(dst);
  if (text === 'default') return 0;
  return text.includes('/') ? Number(text.split('/')[1]) : text.includes(':') ? 128 : 32;
}
