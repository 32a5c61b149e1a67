/**
 * One pod on this node, from binding to deletion: its sandbox (a pod network namespace with
 * addresses from the node's pod CIDRs via Lab.addPod, or the node's namespace for hostNetwork),
 * hostPort DNAT, volumes, init containers then containers, status, and graceful termination.
 */
import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { V1Pod } from '@kubernetes/client-node';
import type { Lab } from '../topology/apply.js';
import { isRunning, netnsPath, processIdentity, type ProcessIdentity } from '../topology/host.js';
import { type NodePlan, podAddresses, podIdentity } from '../topology/plan.js';
import { Container, type ContainerHost } from './container.js';
import type { PodFacts } from './env.js';
import { type NatRule, hostPortRules } from './hostport.js';
import type { ObjectCache } from './objects.js';
import { type NodeContext, type VolumeOnHost, lowestFreeIndex, processSpec } from './pods.js';
import type { KubeRest } from './rest.js';
import { isStatus } from './rest.js';
import { restartDelayMs } from './restart.js';
import { type PodStatusJson, podStatus } from './status.js';
import { PendingTimers } from './timers.js';
import {
  type TokenRequestSpec,
  type VolumeFile,
  referencedObjects,
  tokenKey,
  tokenRequests,
  volumeContent,
} from './volumes.js';

const run = promisify(execFile);

/** A token is renewed at 80% of its life, as the kubelet does. */
const TOKEN_RENEW_FRACTION = 0.8;
const DEFAULT_GRACE_SECONDS = 30;
const EVENT_REPEAT_MS = 60_000;

export interface WorkerContext {
  lab: Lab;
  node: NodePlan;
  rest: KubeRest;
  objects: ObjectCache;
  nodeContext: NodeContext;
  /** this pod's directory: volumes, container logs, sandbox record */
  dir: string;
  /** pod address numbers held by the node's other pods */
  usedAddresses(): Set<number>;
  log(msg: string, fields?: Record<string, unknown>): void;
}

/** Where a kubelet keeps its pods' directories (one per pod UID) under its --state-dir. */
export const podsDirOf = (stateDir: string): string => join(stateDir, 'pods');

/** A pod's sandbox record in its directory (read back by the kubelet at start and by lab/workloads/sandbox.ts). */
export const sandboxRecordFile = (podDir: string): string => join(podDir, 'sandbox.json');

/** Written before anything is made, so a kubelet that crashed can undo it at its next start. */
export interface SandboxRecord {
  namespace: string;
  name: string;
  uid: string;
  /** the pod's own network namespace (a Lab pod name), absent for hostNetwork */
  sandbox?: string;
  addressIndex?: number;
  natRules: NatRule[];
  /** its containers' process groups, by the identity of each group's leader (checked before a signal) */
  processGroups: ProcessIdentity[];
}

/** A pod's condition types and statuses, comparable as one string. */
function conditionStates(pod: V1Pod): string {
  return (pod.status?.conditions ?? []).map((c) => `${c.type}=${c.status}`).sort().join(',');
}

export class PodWorker {
  private readonly initContainers: Container[];
  private readonly containers: Container[];
  private readonly tokens = new Map<string, string>();
  private readonly timers = new PendingTimers();
  private readonly written = new Map<string, string>();
  private readonly record: SandboxRecord;
  private facts: PodFacts;
  private initialized = false;
  private terminating: Promise<void> | undefined;
  private aborted = false;
  private statusDirty = false;
  /** the conditions of the last status this kubelet wrote (`conditionStates`) */
  private writtenConditions: string | undefined;
  private statusWriting: Promise<void> | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly startTime = new Date().toISOString();
  private readonly refs;
  private volumeProblem: string | undefined;

  constructor(
    private pod: V1Pod,
    private readonly ctx: WorkerContext,
  ) {
    const meta = pod.metadata ?? {};
    this.record = { namespace: meta.namespace ?? 'default', name: meta.name ?? '', uid: meta.uid ?? '', natRules: [], processGroups: [] };
    const hostIPs = [ctx.node.ipv4, ctx.node.ipv6];
    this.facts = { hostIPs, podIPs: pod.spec?.hostNetwork ? hostIPs : [] };
    this.refs = referencedObjects(pod);
    const make = (isInit: boolean) => (spec: NonNullable<V1Pod['spec']>['containers'][number]) =>
      new Container(spec, this.containerHost(spec.name), isInit);
    this.initContainers = (pod.spec?.initContainers ?? []).map(make(true));
    this.containers = (pod.spec?.containers ?? []).map(make(false));
  }

  get addressIndex(): number | undefined {
    return this.record.addressIndex;
  }

  private get target(): string {
    return this.record.sandbox ? `${this.ctx.node.name}/${this.record.sandbox}` : this.ctx.node.name;
  }

  private containerHost(name: string): ContainerHost {
    return {
      lab: this.ctx.lab,
      target: () => this.target,
      dir: join(this.ctx.dir, 'containers', name),
      podIP: () => this.facts.podIPs[0] ?? this.ctx.node.ipv4,
      restartPolicy: this.pod.spec?.restartPolicy ?? 'Always',
      terminationGraceMs: (this.pod.spec?.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS) * 1000,
      spec: () => {
        if (this.volumeProblem) return { ok: false as const, reason: 'CreateContainerConfigError' as const, message: this.volumeProblem };
        const spec = [...(this.pod.spec?.initContainers ?? []), ...(this.pod.spec?.containers ?? [])].find((c) => c.name === name);
        return processSpec(this.pod, spec!, this.facts, this.ctx.objects, this.volumesOnHost(), this.ctx.nodeContext);
      },
      changed: () => {
        this.savePids(); // a restart has a new pid
        this.statusChanged();
      },
      event: (type, reason, message) => void this.event(type, reason, message, name),
    };
  }

  // --- start --------------------------------------------------------------------------------------

  async start(): Promise<void> {
    mkdirSync(this.ctx.dir, { recursive: true });
    for (const c of [...this.initContainers, ...this.containers]) mkdirSync(join(this.ctx.dir, 'containers', c.record.name), { recursive: true });
    await this.ctx.objects.acquire(this.record.namespace, this.refs);
    this.unsubscribe = this.ctx.objects.onChange(() => this.objectsChanged());
    if (!(await this.prepare())) return;
    if (this.terminating || this.aborted) return;
    for (const init of this.initContainers) {
      const finished = init.finished();
      init.start();
      const exitCode = await finished;
      if (exitCode !== 0 || this.terminating || this.aborted) return; // Failed (restartPolicy Never), or going away
    }
    this.initialized = true;
    for (const c of this.containers) c.start();
    this.statusChanged();
  }

  /** Sandbox, tokens and volumes; what fails is undone and tried again with backoff. False: going away. */
  private async prepare(): Promise<boolean> {
    for (let failures = 1; ; failures++) {
      if (this.terminating || this.aborted) return false;
      const sandboxNeeded = !this.pod.spec?.hostNetwork && !this.record.sandbox;
      try {
        if (sandboxNeeded) await this.makeSandbox();
        this.statusChanged();
        await this.issueTokens();
        this.writeVolumes();
        return true;
      } catch (err) {
        const message = String((err as Error).message ?? err).split('\n')[0];
        const retryInMs = restartDelayMs(failures);
        this.ctx.log('pod sandbox failed', { pod: this.key, err: message, retryInMs });
        void this.event('Warning', 'FailedCreatePodSandBox', message);
        if (sandboxNeeded) await this.undoSandbox();
        await new Promise<void>((resolve) => this.timers.later(retryInMs, resolve));
      }
    }
  }

  private async undoSandbox(): Promise<void> {
    await removeSandbox(this.ctx.lab, this.ctx.node, this.record).catch(() => undefined);
    this.record.sandbox = undefined;
    this.record.addressIndex = undefined;
    this.record.natRules = [];
    this.facts = { ...this.facts, podIPs: [] };
    this.saveRecord();
  }

  get key(): string {
    return `${this.record.namespace}/${this.record.name}`;
  }

  private async makeSandbox(): Promise<void> {
    const index = lowestFreeIndex(this.ctx.usedAddresses());
    const { ipv4, ipv6 } = podAddresses(this.ctx.node, index);
    // a pod namespace is named after the pod: one of the same name in another namespace is not ours to touch
    if (existsSync(netnsPath(podIdentity(this.ctx.node, this.record.name).netns))) {
      throw new Error(`a pod named ${this.record.name} already runs on ${this.ctx.node.name} (in another namespace): the lab names pod namespaces by pod name`);
    }
    this.record.sandbox = this.record.name;
    this.record.addressIndex = index;
    this.record.natRules = hostPortRules(this.pod, this.ctx.node, { ipv4, ipv6 });
    this.saveRecord(); // before making anything
    await this.ctx.lab.addPod(this.ctx.node.name, this.record.sandbox, ipv4, ipv6);
    this.facts = { ...this.facts, podIPs: [ipv4, ipv6] };
    for (const rule of this.record.natRules) await natRule(this.ctx.node, 'append', rule);
  }

  private saveRecord(): void {
    writeFileSync(sandboxRecordFile(this.ctx.dir), JSON.stringify(this.record));
  }

  private savePids(): void {
    if (this.tornDown) return;
    this.record.processGroups = [...this.initContainers, ...this.containers].flatMap((c) => (c.pid ? (processIdentity(c.pid) ?? []) : []));
    this.saveRecord();
  }

  // --- volumes and tokens -------------------------------------------------------------------------

  private volumeDir(name: string): string {
    return join(this.ctx.dir, 'volumes', name);
  }

  private volumesOnHost(): Map<string, VolumeOnHost> {
    const result = new Map<string, VolumeOnHost>();
    for (const v of this.pod.spec?.volumes ?? []) {
      if (v.hostPath) {
        result.set(v.name, { path: v.hostPath.path, file: existsSync(v.hostPath.path) && !statSync(v.hostPath.path).isDirectory() });
      } else result.set(v.name, { path: this.volumeDir(v.name), file: false });
    }
    return result;
  }

  /** Writes every volume that changed; a volume that cannot be made keeps the containers Waiting. */
  private writeVolumes(): void {
    const lookup = { ...bindLookup(this.ctx.objects), token: (spec: TokenRequestSpec) => this.tokens.get(tokenKey(spec)) };
    this.volumeProblem = undefined;
    for (const volume of this.pod.spec?.volumes ?? []) {
      const content = volumeContent(this.pod, this.facts, volume, lookup);
      if (!content.ok) {
        this.volumeProblem = content.message;
        continue;
      }
      const c = content.value;
      if (c.kind === 'hostPath') this.prepareHostPath(c.path, c.type);
      else if (c.kind === 'emptyDir') mkdirSync(this.volumeDir(volume.name), { recursive: true });
      else {
        const text = JSON.stringify(c.files);
        if (this.written.get(volume.name) === text) continue;
        writeAtomically(this.volumeDir(volume.name), c.files);
        this.written.set(volume.name, text);
      }
    }
    if (this.volumeProblem) void this.event('Warning', 'FailedMount', this.volumeProblem);
  }

  private prepareHostPath(path: string, type: string): void {
    if (type === 'DirectoryOrCreate') mkdirSync(path, { recursive: true });
    else if (type === 'FileOrCreate' && !existsSync(path)) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, '');
    } else if ((type === 'Directory' || type === 'File') && !existsSync(path)) {
      this.volumeProblem = `hostPath ${path} does not exist (type ${type})`;
    }
  }

  private objectsChanged(): void {
    if (this.terminating || this.aborted) return;
    this.writeVolumes();
    for (const c of [...this.initContainers, ...this.containers]) c.retry();
  }

  private async issueTokens(): Promise<void> {
    const specs = tokenRequests(this.pod);
    let renewInMs = Infinity;
    for (const spec of specs) {
      const sa = this.pod.spec?.serviceAccountName ?? 'default';
      const path = `/api/v1/namespaces/${this.record.namespace}/serviceaccounts/${sa}/token`;
      const response = await this.ctx.rest.call<{ status: { token: string } }>('POST', path, {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: {
          audiences: spec.audience ? [spec.audience] : [],
          expirationSeconds: spec.expirationSeconds,
          boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: this.record.name, uid: this.record.uid },
        },
      });
      this.tokens.set(tokenKey(spec), response.status.token);
      renewInMs = Math.min(renewInMs, spec.expirationSeconds * 1000 * TOKEN_RENEW_FRACTION);
    }
    if (Number.isFinite(renewInMs)) {
      this.timers.later(renewInMs, () => {
        this.issueTokens()
          .then(() => this.writeVolumes())
          .catch((err) => this.ctx.log('token renewal failed', { pod: this.key, err: String(err) }));
      });
    }
  }

  // --- status and events --------------------------------------------------------------------------

  update(pod: V1Pod): void {
    this.pod = pod;
    if (pod.metadata?.deletionTimestamp) {
      this.terminate().catch((err) => this.ctx.log('pod termination failed', { pod: this.key, err: String(err) }));
    } else if (this.writtenConditions !== undefined && conditionStates(pod) !== this.writtenConditions) {
      // Someone else changed the conditions (the node lifecycle controller marks a node's pods not
      // ready while its Lease is late): write ours again, as the kubelet's status manager does.
      this.statusChanged();
    }
  }

  private statusChanged(): void {
    this.statusDirty = true;
    if (!this.statusWriting) this.statusWriting = this.writeStatus().finally(() => (this.statusWriting = undefined));
  }

  /** Writes the status until nothing changed meanwhile (one write in flight per pod). */
  private async writeStatus(): Promise<void> {
    while (this.statusDirty && !this.aborted) {
      this.statusDirty = false;
      const path = `/api/v1/namespaces/${this.record.namespace}/pods/${this.record.name}`;
      try {
        const current = await this.ctx.rest.call<V1Pod & { status?: Partial<PodStatusJson> }>('GET', path);
        if (current.metadata?.uid !== this.record.uid) return;
        const status = podStatus(
          this.pod,
          {
            hostIPs: this.facts.hostIPs,
            podIPs: this.facts.podIPs,
            startTime: this.startTime,
            initContainers: this.initContainers.map((c) => c.record),
            containers: this.containers.map((c) => c.record),
            initialized: this.initialized,
          },
          current.status ?? {},
          new Date().toISOString(),
        );
        const written = await this.ctx.rest.call<V1Pod>('PUT', `${path}/status`, { ...current, status });
        this.writtenConditions = conditionStates(written);
      } catch (err) {
        if (isStatus(err, 404)) return;
        this.statusDirty = true;
        if (!isStatus(err, 409)) {
          this.ctx.log('pod status write failed', { pod: this.key, err: String(err) });
          await new Promise((resolve) => setTimeout(resolve, 1000));
        }
      }
    }
  }

  /** when each event was last sent: the same one again only after EVENT_REPEAT_MS (a failing probe would flood the API) */
  private readonly eventsSent = new Map<string, number>();

  private async event(type: 'Normal' | 'Warning', reason: string, message: string, container?: string): Promise<void> {
    const once = `${container}|${reason}|${message}`;
    const last = this.eventsSent.get(once);
    if (last !== undefined && Date.now() - last < EVENT_REPEAT_MS) return;
    this.eventsSent.set(once, Date.now());
    const now = new Date().toISOString();
    try {
      await this.ctx.rest.call('POST', `/api/v1/namespaces/${this.record.namespace}/events`, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: `${this.record.name}.${Date.now().toString(16)}${Math.random().toString(16).slice(2, 6)}`, namespace: this.record.namespace },
        involvedObject: {
          apiVersion: 'v1',
          kind: 'Pod',
          namespace: this.record.namespace,
          name: this.record.name,
          uid: this.record.uid,
          ...(container ? { fieldPath: `spec.containers{${container}}` } : {}),
        },
        reason,
        message,
        type,
        source: { component: 'kubelet', host: this.ctx.node.name },
        reportingComponent: 'kubelet',
        reportingInstance: this.ctx.node.name,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      });
    } catch (err) {
      this.ctx.log('event write failed', { pod: this.key, reason, err: String(err) });
    }
  }

  // --- termination --------------------------------------------------------------------------------

  /** The pod has a deletionTimestamp: preStop, SIGTERM, grace, SIGKILL; then clean up and delete it. */
  terminate(): Promise<void> {
    this.terminating ??= this.runTermination();
    return this.terminating;
  }

  private async runTermination(): Promise<void> {
    const grace = this.pod.metadata?.deletionGracePeriodSeconds ?? this.pod.spec?.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS;
    this.ctx.log('stopping pod', { pod: this.key, graceSeconds: grace });
    this.statusChanged();
    await Promise.all([...this.initContainers, ...this.containers].map((c) => c.stop(grace * 1000)));
    this.statusChanged();
    await this.statusWriting;
    await this.teardown();
    this.ctx.log('pod stopped: deleting it', { pod: this.key });
    const path = `/api/v1/namespaces/${this.record.namespace}/pods/${this.record.name}`;
    try {
      await this.ctx.rest.call('DELETE', path, {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        gracePeriodSeconds: 0,
        preconditions: { uid: this.record.uid },
      });
      this.ctx.log('pod deleted', { pod: this.key });
    } catch (err) {
      if (!isStatus(err, 404)) this.ctx.log('pod delete failed', { pod: this.key, err: String(err) });
    }
  }

  /** Kills everything at once and removes the sandbox (pod object gone, or the kubelet exits). */
  async abort(): Promise<void> {
    this.aborted = true;
    await Promise.all([...this.initContainers, ...this.containers].map((c) => c.abort()));
    await this.teardown();
  }

  private tornDown: Promise<void> | undefined;

  private teardown(): Promise<void> {
    this.tornDown ??= (async () => {
      this.timers.clear();
      this.unsubscribe?.();
      this.ctx.objects.release(this.record.namespace, this.refs);
      await removeSandbox(this.ctx.lab, this.ctx.node, this.record);
      rmSync(this.ctx.dir, { recursive: true, force: true });
    })();
    return this.tornDown;
  }
}

function bindLookup(objects: ObjectCache) {
  return { secret: objects.secret.bind(objects), configMap: objects.configMap.bind(objects) };
}

/** iptables/ip6tables in the node's network namespace only. */
export async function natRule(node: NodePlan, action: 'append' | 'delete', rule: NatRule): Promise<void> {
  const tool = rule.family === 4 ? 'iptables' : 'ip6tables';
  await run('nsenter', [`--net=${netnsPath(node.netns)}`, '--', tool, '-w', '-t', 'nat', action === 'append' ? '-A' : '-D', ...rule.args]);
}

/** Undoes what a sandbox record describes (idempotent): processes, NAT rules, the pod namespace. */
export async function removeSandbox(lab: Lab, node: NodePlan, record: SandboxRecord): Promise<void> {
  // a record of a kubelet killed long ago names pids other processes may hold now: only groups whose
  // leader is the same process are signalled (the pod's namespace goes below, with whatever runs in it)
  for (const leader of record.processGroups ?? []) {
    if (!isRunning(leader)) continue;
    try {
      process.kill(-leader.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  for (const rule of record.natRules) await natRule(node, 'delete', rule).catch(() => undefined);
  if (record.sandbox) await lab.removePod(node.name, record.sandbox);
}

/**
 * The kubelet's atomic writer: files go to a fresh `..<time>` directory, `..data` is switched to
 * it with one rename, and each top-level name is a symlink through `..data`, so a reader of the
 * directory sees either the old or the new set, never a mix.
 */
export function writeAtomically(dir: string, files: VolumeFile[]): void {
  mkdirSync(dir, { recursive: true });
  const generation = `..${new Date().toISOString().replace(/[:.]/g, '_')}_${process.hrtime.bigint()}`;
  for (const f of files) {
    const path = join(dir, generation, f.path);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, f.data, { mode: f.mode });
  }
  mkdirSync(join(dir, generation), { recursive: true });
  const previous = existsSync(join(dir, '..data')) ? readlinkSync(join(dir, '..data')) : undefined;
  symlinkSync(generation, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  const top = new Set(files.map((f) => f.path.split('/')[0]));
  for (const name of top) {
    try {
      symlinkSync(join('..data', name), join(dir, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // already a link through ..data
    }
  }
  for (const name of readdirSync(dir)) {
    if (!name.startsWith('..') && !top.has(name)) rmSync(join(dir, name), { force: true });
  }
  if (previous && previous !== generation) rmSync(join(dir, previous), { recursive: true, force: true });
}
