/**
 * A pod's status as the kubelet reports it, from what the lab kubelet knows of its containers.
 * Pure. The shapes are the API's JSON (times as RFC 3339 strings), written with a PUT to
 * pods/<name>/status, so the EndpointSlice controller reads ready/serving/terminating from them.
 */
import type { V1Pod } from '@kubernetes/client-node';

export interface Terminated {
  exitCode: number;
  signal?: number;
  reason: string;
  message?: string;
  startedAt: string;
  finishedAt: string;
}

export type ContainerState =
  | { waiting: { reason: string; message?: string } }
  | { running: { startedAt: string } }
  | { terminated: Terminated };

export interface ContainerRecord {
  name: string;
  image: string;
  state: ContainerState;
  lastTerminated?: Terminated;
  restartCount: number;
  /** readiness: probe passed (or no probe and running) */
  ready: boolean;
  /** startup: probe passed (or no probe and running) */
  started: boolean;
  pid?: number;
}

export interface PodRecord {
  hostIPs: string[];
  podIPs: string[];
  startTime: string;
  initContainers: ContainerRecord[];
  containers: ContainerRecord[];
  /** every init container has exited 0 */
  initialized: boolean;
}

export interface Condition {
  type: string;
  status: 'True' | 'False';
  reason?: string;
  message?: string;
  lastTransitionTime: string;
  lastProbeTime: null;
}

export interface PodStatusJson {
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed';
  conditions: Condition[];
  hostIP?: string;
  hostIPs?: Array<{ ip: string }>;
  podIP?: string;
  podIPs?: Array<{ ip: string }>;
  startTime: string;
  initContainerStatuses: unknown[];
  containerStatuses: unknown[];
  [other: string]: unknown;
}

function terminatedOf(c: ContainerRecord): Terminated | undefined {
  return 'terminated' in c.state ? c.state.terminated : undefined;
}

export function podPhase(pod: V1Pod, rec: PodRecord): PodStatusJson['phase'] {
  const policy = pod.spec?.restartPolicy ?? 'Always';
  const failedInit = rec.initContainers.find((c) => (terminatedOf(c)?.exitCode ?? 0) !== 0);
  if (!rec.initialized) return failedInit && policy === 'Never' ? 'Failed' : 'Pending';
  const ended = rec.containers.map(terminatedOf);
  if (ended.every((t) => t !== undefined)) {
    // all stopped: terminal unless they are about to be restarted (Always, or OnFailure after a failure)
    const failed = ended.some((t) => t?.exitCode !== 0);
    const restarting = !pod.metadata?.deletionTimestamp && (policy === 'Always' || (policy === 'OnFailure' && failed));
    if (!restarting) return failed ? 'Failed' : 'Succeeded';
  }
  const everStarted = rec.containers.some((c) => 'running' in c.state || 'terminated' in c.state || c.restartCount > 0);
  return everStarted ? 'Running' : 'Pending';
}

function containerStatus(c: ContainerRecord): unknown {
  return {
    name: c.name,
    image: c.image,
    imageID: c.image,
    ...(c.pid !== undefined ? { containerID: `lab://${c.pid}` } : {}),
    ready: c.ready,
    started: c.started,
    restartCount: c.restartCount,
    state: c.state,
    lastState: c.lastTerminated ? { terminated: c.lastTerminated } : {},
  };
}

function condition(
  type: string,
  ok: boolean,
  previous: Condition[],
  now: string,
  why?: { reason: string; message: string },
): Condition {
  const status = ok ? 'True' : 'False';
  const before = previous.find((c) => c.type === type);
  return {
    type,
    status,
    ...(!ok && why ? why : {}),
    // the transition time moves only when the status changes
    lastTransitionTime: before?.status === status ? before.lastTransitionTime : now,
    lastProbeTime: null,
  };
}

const OWN_CONDITIONS = ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'];

/**
 * The status to write: `current` (what the API server has) with the kubelet's fields replaced;
 * conditions of other owners (e.g. DisruptionTarget) are kept.
 */
export function podStatus(pod: V1Pod, rec: PodRecord, current: Partial<PodStatusJson>, now: string): PodStatusJson {
  const previous = (current.conditions ?? []) as Condition[];
  const unready = rec.containers.filter((c) => !c.ready).map((c) => c.name);
  const pendingInit = rec.initContainers.filter((c) => terminatedOf(c)?.exitCode !== 0).map((c) => c.name);
  const phase = podPhase(pod, rec);
  const notReady = {
    reason: phase === 'Succeeded' ? 'PodCompleted' : 'ContainersNotReady',
    message: `containers with unready status: [${unready.join(' ')}]`,
  };
  const conditions = [
    condition('PodScheduled', true, previous, now),
    condition('Initialized', rec.initialized, previous, now, {
      reason: 'ContainersNotInitialized',
      message: `containers with incomplete status: [${pendingInit.join(' ')}]`,
    }),
    condition('ContainersReady', unready.length === 0, previous, now, notReady),
    condition('Ready', unready.length === 0, previous, now, notReady),
  ];
  const addresses = (ips: string[]) => ips.map((ip) => ({ ip }));
  return {
    ...current,
    phase,
    conditions: [...previous.filter((c) => !OWN_CONDITIONS.includes(c.type)), ...conditions],
    hostIP: rec.hostIPs[0],
    hostIPs: addresses(rec.hostIPs),
    ...(rec.podIPs.length > 0 ? { podIP: rec.podIPs[0], podIPs: addresses(rec.podIPs) } : {}),
    startTime: current.startTime ?? rec.startTime,
    initContainerStatuses: rec.initContainers.map(containerStatus),
    containerStatuses: rec.containers.map(containerStatus),
  };
}
