/**
 * The lab kubelet of one node: registers the Node, watches the pods bound to it and runs each
 * through a PodWorker. It runs inside the node's network namespace, so probes reach pod and node
 * addresses (and 127.0.0.1 of hostNetwork pods) directly.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { UserError } from '../../lib/errors.js';
import { ResourceInformer } from '../../lib/k8s/informer.js';
import type { Logger } from '../../lib/log.js';
import { Lab } from '../topology/apply.js';
import { netnsPath } from '../topology/host.js';
import { type NodePlan, findNode } from '../topology/plan.js';
import type { ImageCatalog } from './images.js';
import { NodeRegistration } from './node.js';
import { ObjectCache } from './objects.js';
import { KubeRest, isStatus } from './rest.js';
import { restartDelayMs } from './restart.js';
import { PodWorker, type SandboxRecord, podsDirOf, removeSandbox, sandboxRecordFile } from './worker.js';

export interface KubeletOptions {
  kubeconfig: string;
  nodeName: string;
  labPrefix: string;
  stateDir: string;
  catalog: ImageCatalog;
  kubeletVersion: string;
  /** kill every pod and remove its sandbox when stopping (otherwise the next start does it) */
  cleanupOnExit: boolean;
  labels: Record<string, string>;
  taints: Array<{ key: string; value?: string; effect: string }>;
}

/** Refuses to run outside the node's network namespace (probes and hostNetwork pods need it). */
function assertInNodeNetns(node: NodePlan): void {
  const own = readlinkSync('/proc/self/ns/net');
  const nodeInode = statSync(netnsPath(node.netns)).ino;
  if (own !== `net:[${nodeInode}]`) {
    throw new UserError(
      `the lab kubelet of ${node.name} must run in its network namespace: start it with nsenter --net=${netnsPath(node.netns)} (or Lab.spawnIn('${node.name}', …))`,
    );
  }
}

export class Kubelet {
  private readonly workers = new Map<string, PodWorker>();
  private readonly lab: Lab;
  private readonly node: NodePlan;
  private readonly rest: KubeRest;
  private readonly objects: ObjectCache;
  private readonly registration: NodeRegistration;
  private readonly pods: ResourceInformer<V1Pod>;
  private readonly podsDir: string;

  constructor(
    private readonly options: KubeletOptions,
    private readonly log: Logger,
  ) {
    this.lab = Lab.open(options.labPrefix);
    this.node = findNode(this.lab.plan, options.nodeName);
    assertInNodeNetns(this.node);
    const kc = new KubeConfig();
    kc.loadFromFile(options.kubeconfig);
    this.rest = new KubeRest(kc);
    const onError = (what: string, err: unknown) => this.log.warn({ err: String(err) }, `${what} failed`);
    this.objects = new ObjectCache(kc, onError);
    this.podsDir = podsDirOf(options.stateDir);
    this.registration = new NodeRegistration(
      this.rest,
      {
        name: this.node.name,
        ipv4: this.node.ipv4,
        ipv6: this.node.ipv6,
        podCIDRv4: this.node.podCIDRv4,
        podCIDRv6: this.node.podCIDRv6,
        kubeletVersion: options.kubeletVersion,
        stateDir: options.stateDir,
        labels: options.labels,
        taints: options.taints,
      },
      onError,
    );
    const core = kc.makeApiClient(CoreV1Api);
    const fieldSelector = `spec.nodeName=${this.node.name}`;
    this.pods = new ResourceInformer<V1Pod>({
      kubeConfig: kc,
      path: '/api/v1/pods',
      fieldSelector,
      list: () => core.listPodForAllNamespaces({ fieldSelector }),
      onError: (err, { delayMs }) => this.log.warn({ err: String(err), retryInMs: delayMs }, 'pod list/watch failed'),
    });
  }

  async start(): Promise<void> {
    mkdirSync(this.podsDir, { recursive: true });
    await this.removeLeftovers();
    // the API server may still be coming up (the lab starts kubelets beside it)
    for (let attempt = 1; ; attempt++) {
      try {
        await this.registration.register();
        break;
      } catch (err) {
        const retryInMs = restartDelayMs(attempt);
        this.log.warn({ err: String(err), retryInMs }, 'node registration failed');
        await new Promise((resolve) => setTimeout(resolve, retryInMs));
      }
    }
    this.log.info({ node: this.node.name }, 'node registered');
    this.pods.on({ upsert: (pod) => this.podChanged(pod), delete: (pod) => this.podGone(pod) });
    await this.pods.start();
  }

  /** Sandboxes of a previous run of this kubelet (it crashed, or stopped without --cleanup-on-exit). */
  private async removeLeftovers(): Promise<void> {
    for (const uid of readdirSync(this.podsDir)) {
      const file = sandboxRecordFile(join(this.podsDir, uid));
      if (existsSync(file)) {
        const record = JSON.parse(readFileSync(file, 'utf8')) as SandboxRecord;
        await removeSandbox(this.lab, this.node, record);
        this.log.info({ pod: `${record.namespace}/${record.name}` }, 'removed a previous run’s pod sandbox');
      }
      rmSync(join(this.podsDir, uid), { recursive: true, force: true });
    }
  }

  private podChanged(pod: V1Pod): void {
    const uid = pod.metadata?.uid ?? '';
    const worker = this.workers.get(uid);
    if (worker) {
      worker.update(pod);
      return;
    }
    if (pod.metadata?.deletionTimestamp) {
      void this.deleteNow(pod); // never ran here (or ran before this kubelet started): nothing to stop
      return;
    }
    if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return;
    const created = new PodWorker(pod, {
      lab: this.lab,
      node: this.node,
      rest: this.rest,
      objects: this.objects,
      nodeContext: {
        catalog: this.options.catalog,
        clusterName: this.node.cluster,
        apiServer: this.rest.apiServer,
        baseEnv: { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: '/root' },
      },
      dir: join(this.podsDir, uid),
      usedAddresses: () => new Set([...this.workers.values()].flatMap((w) => (w.addressIndex ? [w.addressIndex] : []))),
      log: (msg, fields) => this.log.info(fields ?? {}, msg),
    });
    this.workers.set(uid, created);
    this.log.info({ pod: created.key }, 'starting pod');
    created.start().catch((err) => this.log.warn({ pod: created.key, err: String(err) }, 'pod start failed'));
  }

  private podGone(pod: V1Pod): void {
    const uid = pod.metadata?.uid ?? '';
    const worker = this.workers.get(uid);
    if (!worker) return;
    this.workers.delete(uid);
    this.log.info({ pod: worker.key }, 'pod deleted: stopping what is left');
    worker.abort().catch((err) => this.log.warn({ pod: worker.key, err: String(err) }, 'pod removal failed'));
  }

  private async deleteNow(pod: V1Pod): Promise<void> {
    const path = `/api/v1/namespaces/${pod.metadata?.namespace}/pods/${pod.metadata?.name}`;
    try {
      await this.rest.call('DELETE', path, { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid: pod.metadata?.uid } });
    } catch (err) {
      if (!isStatus(err, 404) && !isStatus(err, 409)) this.log.warn({ err: String(err) }, 'pod delete failed');
    }
  }

  async stop(): Promise<void> {
    this.registration.stop();
    await this.pods.stop();
    if (this.options.cleanupOnExit) {
      await Promise.all([...this.workers.values()].map((w) => w.abort()));
      this.workers.clear();
    }
    await this.objects.stop();
  }
}
