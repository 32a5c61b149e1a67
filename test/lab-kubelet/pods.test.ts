import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { hostPortRules } from '../../lab/kubelet/hostport.js';
import { parseLabel, parseTaint } from '../../lab/kubelet/main.js';
import { goArch, nodeObject } from '../../lab/kubelet/node.js';
import { type NodeContext, containerMounts, lowestFreeIndex, processSpec, serviceEnv } from '../../lab/kubelet/pods.js';

const node: NodeContext = {
  catalog: { projectRepository: 'clustermesh', distDir: '/repo/dist', etcdBinary: '/cache/etcd' },
  clusterName: 'east',
  apiServer: { host: '10.99.0.2', port: 6443 },
  baseEnv: { PATH: '/usr/bin:/bin' },
};
const facts = { hostIPs: ['10.99.0.3', 'fd99::3'], podIPs: ['10.99.0.3', 'fd99::3'] };
const lookup = { secret: () => undefined, configMap: () => undefined };
const volumes = new Map([
  ['remotes', { path: '/state/pods/u/volumes/remotes', file: false }],
  ['bpf', { path: '/sys/fs/bpf', file: false }],
  ['conf', { path: '/etc/x.conf', file: true }],
]);

const agent: V1Container = {
  name: 'clustermesh-agent',
  image: 'clustermesh:0.1.0',
  command: ['node', '/opt/clustermesh/dist/agent/main.js'],
  args: ['--node-name=$(NODE_NAME)', '--status-addr=$(NODE_IP):9878'],
  env: [
    { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
    { name: 'NODE_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
  ],
  volumeMounts: [
    { name: 'remotes', mountPath: '/var/lib/clustermesh/remotes', readOnly: true },
    { name: 'bpf', mountPath: '/sys/fs/bpf' },
  ],
};
const agentPod: V1Pod = { metadata: { name: 'clustermesh-agent-x', namespace: 'cm' }, spec: { nodeName: 'east-worker', hostNetwork: true, containers: [agent] } };

describe('processSpec', () => {
  it("the chart's agent: argv expanded, env with the API server's real address, tree and volumes mounted", () => {
    expect(processSpec(agentPod, agent, facts, lookup, volumes, node)).toEqual({
      ok: true,
      value: {
        argv: ['node', '/opt/clustermesh/dist/agent/main.js', '--node-name=east-worker', '--status-addr=10.99.0.3:9878'],
        env: {
          PATH: '/usr/bin:/bin',
          HOSTNAME: 'east-worker',
          KUBERNETES_SERVICE_HOST: '10.99.0.2',
          KUBERNETES_SERVICE_PORT: '6443',
          KUBERNETES_SERVICE_PORT_HTTPS: '6443',
          KUBERNETES_PORT: 'tcp://10.99.0.2:6443',
          NODE_NAME: 'east-worker',
          NODE_IP: '10.99.0.3',
        },
        workingDir: '/opt/clustermesh',
        mounts: [
          { source: '/repo', target: '/opt/clustermesh', readOnly: true, file: false },
          { source: '/state/pods/u/volumes/remotes', target: '/var/lib/clustermesh/remotes', readOnly: true, file: false },
          { source: '/sys/fs/bpf', target: '/sys/fs/bpf', readOnly: false, file: false },
        ],
      },
    });
  });

  it.each([
    { what: 'an image the lab cannot run', container: { name: 'web', image: 'nginx' }, reason: 'ImageNotRunnable' },
    { what: 'a missing Secret in env', container: { name: 'c', image: 'clustermesh', env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }] }, reason: 'CreateContainerConfigError' },
    { what: 'a mount of no volume', container: { name: 'c', image: 'clustermesh', volumeMounts: [{ name: 'nope', mountPath: '/x' }] }, reason: 'CreateContainerConfigError' },
  ])('waits with a reason: $what', ({ container, reason }) => {
    expect(processSpec(agentPod, container, facts, lookup, volumes, node)).toMatchObject({ ok: false, reason, message: expect.any(String) });
  });

  it('a pod with its own namespace has its own name as HOSTNAME', () => {
    const pod = { metadata: { name: 'web-1', namespace: 'd' }, spec: { containers: [] } };
    const spec = processSpec(pod, { name: 'c', image: 'clustermesh.io/lab-echo' }, facts, lookup, volumes, node);
    expect(spec.ok && spec.value.env.HOSTNAME).toBe('web-1');
    expect(spec.ok && spec.value.argv).toEqual(['node', '/repo/dist/lab/workloads/echo-server.js', '--identity', 'east/web-1']);
  });
});

describe('containerMounts', () => {
  it.each([
    { mount: { name: 'conf', mountPath: '/etc/app.conf' }, value: [{ source: '/etc/x.conf', target: '/etc/app.conf', readOnly: false, file: true }] },
    { mount: { name: 'remotes', mountPath: '/r', subPath: 'peer/a' }, value: [{ source: '/state/pods/u/volumes/remotes/peer/a', target: '/r', readOnly: false, file: false }] },
  ])('$mount.name', ({ mount, value }) => expect(containerMounts({ name: 'c', volumeMounts: [mount] }, volumes)).toEqual({ ok: true, value }));

  it.each(['../x', '/abs', 'a/../../b'])('refuses subPath %s', (subPath) => {
    expect(containerMounts({ name: 'c', volumeMounts: [{ name: 'remotes', mountPath: '/r', subPath }] }, volumes)).toMatchObject({ ok: false });
  });
});

describe('small decisions', () => {
  it.each([
    [[], 1],
    [[1, 2, 3], 4],
    [[2, 3], 1],
    [[1, 3], 2],
  ])('lowest free address number in %j is %d', (used, n) => expect(lowestFreeIndex(new Set(used))).toBe(n));

  it('service env brackets IPv6', () => {
    expect(serviceEnv({ host: 'fd99::2', port: 6443 })).toMatchObject({ KUBERNETES_SERVICE_HOST: 'fd99::2', KUBERNETES_PORT: 'tcp://[fd99::2]:6443' });
  });

  it.each([
    ['node-role.kubernetes.io/control-plane:NoSchedule', { key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }],
    ['a=b:NoExecute', { key: 'a', value: 'b', effect: 'NoExecute' }],
  ])('taint %s', (text, taint) => expect(parseTaint(text)).toEqual(taint));
  it.each(['a', 'a:Sometimes', '=b:NoSchedule'])('refuses taint %s', (text) => expect(() => parseTaint(text)).toThrow(/must be key/));
  it('labels', () => {
    expect(parseLabel('a/b=c=d')).toEqual(['a/b', 'c=d']);
    expect(() => parseLabel('=x')).toThrow(/key=value/);
  });

  it('node object: labels and both pod CIDRs', () => {
    const id = { name: 'w', ipv4: '1', ipv6: '2', podCIDRv4: '10.1.1.0/24', podCIDRv6: 'fd99:1:0:1::/64', kubeletVersion: 'v1.34.4', stateDir: '/' };
    expect(nodeObject({ ...id, taints: [{ key: 'k', effect: 'NoSchedule' }] })).toMatchObject({
      metadata: { name: 'w', labels: { 'kubernetes.io/hostname': 'w', 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': goArch(process.arch) } },
      spec: { podCIDR: '10.1.1.0/24', podCIDRs: ['10.1.1.0/24', 'fd99:1:0:1::/64'], taints: [{ key: 'k', effect: 'NoSchedule' }] },
    });
    expect(goArch('x64')).toBe('amd64');
  });
});

describe('hostPortRules', () => {
  const pod = (hostNetwork: boolean): V1Pod => ({
    metadata: { uid: 'U' },
    spec: { hostNetwork, containers: [{ name: 'etcd', ports: [{ containerPort: 2379, hostPort: 32379 }, { containerPort: 2381 }] }] },
  });
  const nodeIPs = { ipv4: '10.99.0.3', ipv6: 'fd99::3' };
  const podIPs = { ipv4: '10.101.1.2', ipv6: 'fd99:101:0:1::2' };
  const tail = ['-m', 'comment', '--comment', 'lab-kubelet:U', '-j', 'DNAT', '--to-destination'];

  it('DNAT from the node address, both families, from outside and from the node itself', () => {
    expect(hostPortRules(pod(false), nodeIPs, podIPs)).toEqual([
      { family: 4, args: ['PREROUTING', '-d', '10.99.0.3', '-p', 'tcp', '--dport', '32379', ...tail, '10.101.1.2:2379'] },
      { family: 4, args: ['OUTPUT', '-d', '10.99.0.3', '-p', 'tcp', '--dport', '32379', ...tail, '10.101.1.2:2379'] },
      { family: 6, args: ['PREROUTING', '-d', 'fd99::3', '-p', 'tcp', '--dport', '32379', ...tail, '[fd99:101:0:1::2]:2379'] },
      { family: 6, args: ['OUTPUT', '-d', 'fd99::3', '-p', 'tcp', '--dport', '32379', ...tail, '[fd99:101:0:1::2]:2379'] },
    ]);
  });

  it('none for hostNetwork pods (they bind the node address themselves)', () => {
    expect(hostPortRules(pod(true), nodeIPs, podIPs)).toEqual([]);
  });
});
