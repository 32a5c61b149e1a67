/**
 * The lab kubelet under the official control plane: a one-worker lab (10.211.0.0/16, fd99:211::/48,
 * prefix kl<pid>), etcd + kube-apiserver + kube-controller-manager + kube-scheduler in the
 * control-plane node's namespace, the kubelet (built, dist/lab/kubelet/main.js) in the worker's.
 * A Deployment of echo pods gets ready endpoints from the real EndpointSlice controller; scaled to
 * 0 its endpoints turn terminating (preStop holds them), then vanish. Everything stays inside the
 * lab's namespaces; lab.down() removes it all, even on failure.
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AppsV1Api,
  CoreV1Api,
  CoordinationV1Api,
  KubeConfig,
  PatchStrategy,
  type V1EndpointSlice,
  type V1Pod,
  Watch,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { type ControlPlane, startControlPlane } from '../../lab/control-plane/index.js';
import { upstreamBinDir } from '../../lab/control-plane/binaries.js';
import { Lab } from '../../lab/topology/apply.js';
import { listNetns } from '../../lab/topology/host.js';
import { type LabSpec, type NodePlan, planLab } from '../../lab/topology/plan.js';
import { CLUSTER_SUITE_WAIT_MS, acquireLabLock } from '../harness/lab-lock.js';
import { builtRequirement, describeRequiring, rootRequirement } from '../harness/requirements.js';

const DIST = join(process.cwd(), 'dist');
const prefix = `kl${process.pid}`.slice(0, 10);
const spec: LabSpec = {
  prefix,
  bridgeSubnetV4: '10.211.0.0/24',
  bridgeSubnetV6: 'fd99:211::/64',
  clusters: [
    {
      name: 'ka',
      id: 1,
      workers: 1,
      podCIDRv4: '10.211.16.0/20',
      podCIDRv6: 'fd99:211:0:1000::/52',
      serviceCIDRv4: '10.211.64.0/20',
      serviceCIDRv6: 'fd99:211:0:2000::/108',
    },
  ],
};
const KUBE_VERSION = 'v1.34.4';
const UPSTREAM = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'];

const upstreamRequirement = {
  met: UPSTREAM.every((b) => existsSync(join(upstreamBinDir(), b))),
  unmet: `no official binaries in ${upstreamBinDir()}: run scripts/build-upstream.sh lab (npm run setup) or set CLUSTERMESH_UPSTREAM_BIN`,
};

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000, diagnostics = () => ''): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; ${diagnostics()}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describeRequiring(
  'lab kubelet with the official control plane',
  [rootRequirement(), builtRequirement(DIST, ['lab/kubelet/main.js', 'lab/workloads/echo-server.js']), upstreamRequirement],
  () => {
    let release: () => void;
    let lab: Lab;
    let dir: string;
    let cp: ControlPlane;
    let worker: NodePlan;
    let kubelet: ChildProcess;
    let kubeletLog: string;
    let core: CoreV1Api;
    let apps: AppsV1Api;
    let kc: KubeConfig;
    const logTail = () => (existsSync(kubeletLog) ? readFileSync(kubeletLog, 'utf8').trim().split('\n').slice(-30).join('\n') : '(no kubelet log)');

    beforeAll(async () => {
      release = await acquireLabLock();
      dir = mkdtempSync(join(tmpdir(), 'lab-kubelet-'));
      lab = await Lab.up(planLab(spec));
      const cpNode = lab.plan.nodes.find((n) => n.role === 'control-plane')!;
      worker = lab.plan.nodes.find((n) => n.role === 'worker')!;
      cp = await startControlPlane(
        {
          clusterName: 'ka',
          dir: join(dir, 'control-plane'),
          advertiseAddress: cpNode.ipv4,
          bindAddress: '0.0.0.0',
          apiPort: 6443,
          etcdClientPort: 2379,
          etcdPeerPort: 2380,
          serviceCIDRs: [spec.clusters[0].serviceCIDRv4, spec.clusters[0].serviceCIDRv6],
        },
        (name, command, args) => {
          const log = join(dir, `${name}.log`);
          const fd = openSync(log, 'a');
          const child = lab.spawnIn(cpNode.name, command, args, { cgroup: false, stdio: ['ignore', fd, fd] });
          closeSync(fd);
          return {
            alive: () => child.exitCode === null && child.signalCode === null,
            logTail: () => `${name}: ${readFileSync(log, 'utf8').trim().split('\n').slice(-5).join(' / ')}`,
          };
        },
      );
      kubeletLog = join(dir, 'kubelet.log');
      const fd = openSync(kubeletLog, 'a');
      kubelet = lab.spawnIn(
        worker.name,
        process.execPath,
        [
          join(DIST, 'lab/kubelet/main.js'),
          `--kubeconfig=${await cp.kubeletKubeconfig(worker.name)}`,
          `--node-name=${worker.name}`,
          `--lab-prefix=${prefix}`,
          `--state-dir=${join(dir, 'kubelet')}`,
          `--dist-dir=${DIST}`,
          `--kubelet-version=${KUBE_VERSION}`,
          `--etcd-binary=${join(upstreamBinDir(), 'etcd')}`,
          '--cleanup-on-exit',
        ],
        { cgroup: false, stdio: ['ignore', fd, fd] },
      );
      closeSync(fd);
      kc = new KubeConfig();
      kc.loadFromFile(cp.adminKubeconfig);
      core = kc.makeApiClient(CoreV1Api);
      apps = kc.makeApiClient(AppsV1Api);
    }, CLUSTER_SUITE_WAIT_MS + 240_000);

    afterAll(async () => {
      try {
        if (kubelet && kubelet.exitCode === null) {
          const exited = new Promise((resolve) => kubelet.once('exit', resolve));
          kubelet.kill('SIGTERM');
          await exited;
        }
        await lab?.down();
      } finally {
        if (dir) rmSync(dir, { recursive: true, force: true });
        release?.();
      }
    }, 60_000);

    it('registers a Ready node with the plan’s addresses and pod CIDRs, and keeps its lease', async () => {
      const node = await until('the node to be Ready', async () => {
        const n = await core.readNode({ name: worker.name });
        return n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? n : undefined;
      }, 60_000, logTail);
      expect(node.spec?.podCIDRs).toEqual([worker.podCIDRv4, worker.podCIDRv6]);
      expect(node.status?.addresses).toEqual([
        { type: 'InternalIP', address: worker.ipv4 },
        { type: 'InternalIP', address: worker.ipv6 },
        { type: 'Hostname', address: worker.name },
      ]);
      expect(node.status?.nodeInfo?.kubeletVersion).toBe(KUBE_VERSION);
      expect(node.metadata?.labels).toMatchObject({ 'kubernetes.io/hostname': worker.name, 'kubernetes.io/os': 'linux' });
      // the kubelet takes its Lease just after it reports Ready (lab/kubelet/node.ts register)
      const leases = kc.makeApiClient(CoordinationV1Api);
      const lease = await until('the node lease', () => leases.readNamespacedLease({ name: worker.name, namespace: 'kube-node-lease' }), 30_000, logTail);
      expect(lease.spec?.holderIdentity).toBe(worker.name);
    }, 90_000);

    it('a Deployment of echo pods gets ready endpoints; scaled to 0 they turn terminating, then vanish', async () => {
      const labels = { app: 'echo' };
      await until('the default service account', () => core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' }), 60_000);
      await core.createNamespacedService({
        namespace: 'default',
        body: {
          metadata: { name: 'echo' },
          spec: { selector: labels, ipFamilyPolicy: 'PreferDualStack', ports: [{ port: 8080, targetPort: 'echo' as never }] },
        },
      });
      await apps.createNamespacedDeployment({
        namespace: 'default',
        body: {
          metadata: { name: 'echo' },
          spec: {
            replicas: 2,
            selector: { matchLabels: labels },
            template: {
              metadata: { labels },
              spec: {
                terminationGracePeriodSeconds: 20,
                containers: [
                  {
                    name: 'echo',
                    image: 'clustermesh.io/lab-echo:latest',
                    ports: [{ name: 'echo', containerPort: 8080 }],
                    readinessProbe: { tcpSocket: { port: 'echo' as never }, periodSeconds: 1 },
                    // holds the endpoint in "terminating, still serving" long enough to be seen
                    lifecycle: { preStop: { exec: { command: ['sleep', '3'] } } },
                  },
                ],
              },
            },
          },
        },
      });

      // every state each endpoint address goes through, from a watch on the service's slices
      const seen = new Map<string, Set<string>>();
      const slices = new Map<string, V1EndpointSlice>();
      const watch = await new Watch(kc).watch(
        '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices',
        { labelSelector: 'kubernetes.io/service-name=echo' },
        (type: string, slice: V1EndpointSlice) => {
          if (type === 'DELETED') slices.delete(slice.metadata!.name!);
          else slices.set(slice.metadata!.name!, slice);
          for (const e of slice.endpoints ?? []) {
            const c = e.conditions ?? {};
            for (const a of e.addresses) {
              if (!seen.has(a)) seen.set(a, new Set());
              seen.get(a)!.add(`ready=${c.ready} serving=${c.serving} terminating=${c.terminating ?? false}`);
            }
          }
        },
        () => undefined,
      );
      try {
        const endpoints = () => [...slices.values()].flatMap((s) => (s.endpoints ?? []).map((e) => ({ family: s.addressType, ...e })));
        const diagnostics = () => `slices: ${JSON.stringify(endpoints())}; kubelet: ${logTail()}`;
        const ready = await until('4 ready endpoints (2 pods × 2 families)', async () => {
          const all = endpoints().filter((e) => e.conditions?.ready);
          return all.length === 4 ? all : undefined;
        }, 180_000, diagnostics);
        const v4 = ready.filter((e) => e.family === 'IPv4').map((e) => e.addresses[0]);
        const v6 = ready.filter((e) => e.family === 'IPv6').map((e) => e.addresses[0]);
        expect(v4.every((ip) => ip.startsWith(worker.podCIDRv4.split('.').slice(0, 3).join('.')))).toBe(true);
        expect(v6).toHaveLength(2);
        expect(ready.every((e) => e.nodeName === worker.name && e.targetRef?.kind === 'Pod')).toBe(true);

        // the pods really answer, with their identity, on both families
        const pods = (await core.listNamespacedPod({ namespace: 'default', labelSelector: 'app=echo' })).items;
        for (const pod of pods) {
          for (const ip of pod.status?.podIPs?.map((p) => p.ip) ?? []) {
            const answer = execFileSync('nsenter', [`--net=/var/run/netns/${worker.netns}`, '--', process.execPath, '-e', CLIENT, ip, '8080'], { encoding: 'utf8' });
            expect(answer).toBe(`OK ka/${pod.metadata!.name}\n`);
          }
          expect(pod.status?.hostIP).toBe(worker.ipv4);
          expect(pod.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
        }

        await apps.patchNamespacedDeploymentScale(
          { name: 'echo', namespace: 'default', body: { spec: { replicas: 0 } } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
        await until('the endpoints to vanish', async () => (endpoints().length === 0 ? true : undefined), 120_000, diagnostics);
        for (const ip of [...v4, ...v6]) {
          expect(seen.get(ip)).toContain('ready=true serving=true terminating=false');
          expect(seen.get(ip)).toContain('ready=false serving=true terminating=true');
        }
        let left: V1Pod[] = [];
        await until('the pods to be deleted', async () => {
          left = (await core.listNamespacedPod({ namespace: 'default', labelSelector: 'app=echo' })).items;
          return left.length === 0 ? true : undefined;
        }, 60_000, () => `left: ${JSON.stringify(left.map((p) => p.metadata))}; ${logTail()}`);
        expect(listNetns().filter((n) => n.startsWith(`${worker.netns}-echo`))).toEqual([]);
      } finally {
        watch.abort();
      }
    }, 360_000);

    it('volumes, service account token, env, hostPort and a liveness restart, all in one pod', async () => {
      await core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 'demo' }, stringData: { key: 'v1' } } });
      const pod = await core.createNamespacedPod({
        namespace: 'default',
        body: {
          metadata: { name: 'tools' },
          spec: {
            terminationGracePeriodSeconds: 2,
            volumes: [
              { name: 'demo', secret: { secretName: 'demo' } },
              { name: 'data', emptyDir: {} },
            ],
            initContainers: [
              { name: 'prepare', image: 'clustermesh:dev', command: ['sh', '-c', 'echo prepared > /var/data/init'], volumeMounts: [{ name: 'data', mountPath: '/var/data' }] },
            ],
            containers: [
              {
                name: 'server',
                image: 'clustermesh:dev',
                command: ['node', '-e', "require('net').createServer((c) => c.end('hp\\n')).listen(9000, '::')"],
                ports: [{ containerPort: 9000, hostPort: 30900 }],
              },
              {
                name: 'reader',
                image: 'clustermesh:dev',
                env: [{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }],
                command: ['sh', '-c', READER],
                volumeMounts: [{ name: 'demo', mountPath: '/etc/demo', readOnly: true }],
              },
              {
                name: 'flaky',
                image: 'clustermesh:dev',
                command: ['sh', '-c', 'grep -q prepared /var/data/init && touch /var/data/alive; sleep 2; rm /var/data/alive; exec sleep 1000'],
                volumeMounts: [{ name: 'data', mountPath: '/var/data' }],
                livenessProbe: { exec: { command: ['cat', '/var/data/alive'] }, periodSeconds: 1, failureThreshold: 1 },
              },
            ],
          },
        },
      });
      const uid = pod.metadata!.uid!;
      const readerLog = join(dir, 'kubelet', 'pods', uid, 'containers', 'reader', 'log');
      const logOf = () => (existsSync(readerLog) ? readFileSync(readerLog, 'utf8') : '');
      const cpNode = lab.plan.nodes.find((n) => n.role === 'control-plane')!;
      await until('the reader to report', async () => (logOf().includes('secret=v1') ? true : undefined), 60_000, () => `${logOf()} ${logTail()}`);
      expect(logOf()).toContain(`token=eyJ ns=default ca=yes host=${cpNode.ipv4} node=${worker.name}`);

      await core.replaceNamespacedSecret({ name: 'demo', namespace: 'default', body: { metadata: { name: 'demo' }, stringData: { key: 'v2' } } });
      await until('the secret update to reach the running container', async () => (logOf().includes('secret=v2') ? true : undefined), 30_000, logOf);

      // hostPort: from another node, to this node's addresses, both families
      for (const ip of [worker.ipv4, worker.ipv6]) {
        const answer = execFileSync('nsenter', [`--net=/var/run/netns/${cpNode.netns}`, '--', process.execPath, '-e', CLIENT, ip, '30900'], { encoding: 'utf8' });
        expect(answer).toBe('OK hp\n');
      }

      const restarted = await until('the liveness probe to restart flaky', async () => {
        const p: V1Pod = await core.readNamespacedPod({ name: 'tools', namespace: 'default' });
        const flaky = p.status?.containerStatuses?.find((c) => c.name === 'flaky');
        return flaky && flaky.restartCount > 0 ? p : undefined;
      }, 60_000, logTail);
      const statuses = Object.fromEntries(restarted.status!.containerStatuses!.map((c) => [c.name, c]));
      expect(statuses.flaky.lastState?.terminated?.exitCode).toBe(143); // SIGTERM from the kill
      expect(statuses.reader.restartCount).toBe(0); // the secret changed under it, no restart
      expect(restarted.status?.initContainerStatuses?.[0]?.state?.terminated).toMatchObject({ exitCode: 0, reason: 'Completed' });
      expect(restarted.status?.conditions?.find((c) => c.type === 'Initialized')?.status).toBe('True');

      await core.deleteNamespacedPod({ name: 'tools', namespace: 'default' });
      await until('tools to be deleted', async () => {
        const left = (await core.listNamespacedPod({ namespace: 'default', fieldSelector: 'metadata.name=tools' })).items;
        return left.length === 0 ? true : undefined;
      }, 60_000, logTail);
      const nat = (tool: string) => execFileSync('nsenter', [`--net=/var/run/netns/${worker.netns}`, '--', tool, '-t', 'nat', '-S'], { encoding: 'utf8' });
      expect(nat('iptables') + nat('ip6tables')).not.toContain('lab-kubelet:');
      expect(listNetns()).not.toContain(`${worker.netns}-tools`);
      expect(existsSync(join(dir, 'kubelet', 'pods', uid))).toBe(false);
    }, 240_000);

    it('a hostNetwork pod runs in the node namespace, with the node address as pod IP; every pod process is in the node cgroup', async () => {
      await core.createNamespacedPod({
        namespace: 'default',
        body: {
          metadata: { name: 'hostecho' },
          spec: {
            hostNetwork: true,
            containers: [
              {
                name: 'echo',
                image: 'clustermesh.io/lab-echo',
                args: ['--identity', 'host/echo', '--port', '18080'],
                ports: [{ name: 'echo', containerPort: 18080 }],
                readinessProbe: { httpGet: { port: 'echo' as never, path: '/' }, periodSeconds: 1, failureThreshold: 1 },
              },
            ],
          },
        },
      });
      // the echo server answers anything with its identity and closes: not an HTTP response, so the
      // httpGet readiness probe fails (an Unhealthy event) and the pod stays unready
      const pod = await until('hostecho to run', async () => {
        const p: V1Pod = await core.readNamespacedPod({ name: 'hostecho', namespace: 'default' });
        return p.status?.containerStatuses?.[0]?.state?.running ? p : undefined;
      }, 60_000, logTail);
      expect(pod.status?.podIPs).toEqual([{ ip: worker.ipv4 }, { ip: worker.ipv6 }]);
      // running = started, not yet listening
      const ask = () => execFileSync('nsenter', [`--net=/var/run/netns/${worker.netns}`, '--', process.execPath, '-e', CLIENT, worker.ipv4, '18080'], { encoding: 'utf8' });
      await until('hostecho to answer on the node address', async () => (ask().startsWith('OK') ? true : undefined), 30_000, logTail);
      expect(ask()).toBe('OK host/echo\n');
      const pid = Number(pod.status!.containerStatuses![0].containerID!.replace('lab://', ''));
      const cgroup = /^0::(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, 'utf8'))![1];
      expect(lab.nodeCgroupDir(worker.name)!.endsWith(cgroup)).toBe(true);
      await until('the readiness probe to fail', async () => {
        const list = await core.listNamespacedEvent({ namespace: 'default', fieldSelector: 'involvedObject.name=hostecho,reason=Unhealthy' });
        return list.items.length > 0 ? true : undefined;
      }, 30_000, logTail);
      const later: V1Pod = await core.readNamespacedPod({ name: 'hostecho', namespace: 'default' });
      expect(later.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('False');
      await core.deleteNamespacedPod({ name: 'hostecho', namespace: 'default' });
    }, 90_000);

    it('writes its pod conditions back when another component changed them (the node controller marking a late node not ready)', async () => {
      await core.createNamespacedPod({
        namespace: 'default',
        body: {
          metadata: { name: 'steady' },
          spec: { containers: [{ name: 'echo', image: 'clustermesh.io/lab-echo', readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 } }] },
        },
      });
      const ready = (p: V1Pod) => p.status?.conditions?.find((c) => c.type === 'Ready')?.status;
      const running = await until('steady to be ready', async () => {
        const p: V1Pod = await core.readNamespacedPod({ name: 'steady', namespace: 'default' });
        return ready(p) === 'True' ? p : undefined;
      }, 60_000, logTail);
      const marked = {
        ...running,
        status: { ...running.status, conditions: running.status!.conditions!.map((c) => (c.type === 'Ready' ? { ...c, status: 'False', reason: 'NodeNotReady' } : c)) },
      };
      await core.replaceNamespacedPodStatus({ name: 'steady', namespace: 'default', body: marked });
      await until('the kubelet to write Ready=True again', async () => {
        const p: V1Pod = await core.readNamespacedPod({ name: 'steady', namespace: 'default' });
        return ready(p) === 'True' ? true : undefined;
      }, 30_000, logTail);
      await core.deleteNamespacedPod({ name: 'steady', namespace: 'default' });
    }, 90_000);

    it('an image it cannot run: Waiting with the reason, and an event', async () => {
      await core.createNamespacedPod({
        namespace: 'default',
        body: { metadata: { name: 'web' }, spec: { nodeName: worker.name, containers: [{ name: 'web', image: 'nginx:1.27' }] } },
      });
      const waiting = await until('web to wait', async () => {
        const pod: V1Pod = await core.readNamespacedPod({ name: 'web', namespace: 'default' });
        const waiting = pod.status?.containerStatuses?.[0]?.state?.waiting;
        return waiting?.reason === 'ContainerCreating' ? undefined : waiting;
      }, 60_000, logTail);
      expect(waiting).toMatchObject({ reason: 'ImageNotRunnable', message: expect.stringContaining('nginx:1.27') });
      const events = await until('the event', async () => {
        const list = await core.listNamespacedEvent({ namespace: 'default', fieldSelector: 'involvedObject.name=web' });
        return list.items.length > 0 ? list.items : undefined;
      }, 30_000);
      expect(events.map((e) => e.message).join('\n')).toContain('ImageNotRunnable');
      await core.deleteNamespacedPod({ name: 'web', namespace: 'default' });
    }, 90_000);

    it('on SIGTERM with --cleanup-on-exit it kills every pod and removes its sandbox', async () => {
      await core.createNamespacedPod({
        namespace: 'default',
        body: { metadata: { name: 'last' }, spec: { nodeName: worker.name, containers: [{ name: 'echo', image: 'clustermesh.io/lab-echo' }] } },
      });
      await until('last to run', async () => {
        const p: V1Pod = await core.readNamespacedPod({ name: 'last', namespace: 'default' });
        return p.status?.containerStatuses?.[0]?.state?.running;
      }, 60_000, logTail);
      expect(listNetns()).toContain(`${worker.netns}-last`);
      const exited = new Promise<number | null>((resolve) => kubelet.once('exit', resolve));
      kubelet.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(listNetns().filter((n) => n.startsWith(`${worker.netns}-`))).toEqual([]);
      const procs = readFileSync(join(lab.nodeCgroupDir(worker.name)!, 'cgroup.procs'), 'utf8').trim();
      expect(procs).toBe('');
    }, 90_000);
  },
);

const READER = [
  'a=/var/run/secrets/kubernetes.io/serviceaccount',
  'echo "token=$(head -c 3 $a/token) ns=$(cat $a/namespace) ca=$(test -s $a/ca.crt && echo yes) host=$KUBERNETES_SERVICE_HOST node=$NODE_NAME"',
  'last=; while :; do v=$(cat /etc/demo/key); if [ "$v" != "$last" ]; then echo "secret=$v"; last=$v; fi; sleep 0.2; done',
].join('\n');

const CLIENT = `
const net = require('net');
const socket = net.connect({ host: process.argv[1], port: Number(process.argv[2]) });
let data = '';
socket.setTimeout(5000, () => { console.log('ERR TIMEOUT'); socket.destroy(); });
socket.on('data', (d) => (data += d));
socket.on('end', () => console.log('OK ' + data.trim()));
socket.on('error', (e) => console.log('ERR ' + e.code));`;
