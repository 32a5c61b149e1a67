import type { V1Pod } from '@kubernetes/client-node';
import { type ContainerRecord, type PodRecord, podPhase, podStatus } from '../../lab/kubelet/status.js';

const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-01-01T00:01:00.000Z';
const running: ContainerRecord['state'] = { running: { startedAt: T0 } };
const waiting: ContainerRecord['state'] = { waiting: { reason: 'ContainerCreating' } };
const exited = (exitCode: number): ContainerRecord['state'] => ({
  terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', startedAt: T0, finishedAt: T1 },
});

function c(name: string, state: ContainerRecord['state'], ready = false, restartCount = 0): ContainerRecord {
  return { name, image: 'img', state, ready, started: 'running' in state, restartCount };
}

function rec(containers: ContainerRecord[], init: ContainerRecord[] = [], initialized = true): PodRecord {
  return { hostIPs: ['10.99.0.3', 'fd99::3'], podIPs: ['10.101.1.2', 'fd99:1::2'], startTime: T0, initContainers: init, containers, initialized };
}

function pod(restartPolicy: string, deleting = false): V1Pod {
  return { metadata: { name: 'p', ...(deleting ? { deletionTimestamp: new Date(T1) } : {}) }, spec: { restartPolicy, containers: [] } };
}

describe('podPhase', () => {
  it.each([
    { what: 'nothing started yet', pod: pod('Always'), rec: rec([c('a', waiting)]), phase: 'Pending' },
    { what: 'init running', pod: pod('Always'), rec: rec([c('a', waiting)], [c('i', running)], false), phase: 'Pending' },
    { what: 'init failed, Never', pod: pod('Never'), rec: rec([c('a', waiting)], [c('i', exited(1))], false), phase: 'Failed' },
    { what: 'init failed, Always: retried', pod: pod('Always'), rec: rec([c('a', waiting)], [c('i', exited(1))], false), phase: 'Pending' },
    { what: 'one running', pod: pod('Always'), rec: rec([c('a', running), c('b', waiting)]), phase: 'Running' },
    { what: 'crash looping (waiting after restarts)', pod: pod('Always'), rec: rec([c('a', { waiting: { reason: 'CrashLoopBackOff' } }, false, 3)]), phase: 'Running' },
    { what: 'all exited 0, Never', pod: pod('Never'), rec: rec([c('a', exited(0)), c('b', exited(0))]), phase: 'Succeeded' },
    { what: 'one exited 1, Never', pod: pod('Never'), rec: rec([c('a', exited(0)), c('b', exited(1))]), phase: 'Failed' },
    { what: 'exited 0, OnFailure', pod: pod('OnFailure'), rec: rec([c('a', exited(0))]), phase: 'Succeeded' },
    { what: 'exited 1, OnFailure: restarting', pod: pod('OnFailure'), rec: rec([c('a', exited(1))]), phase: 'Running' },
    { what: 'exited 0, Always: restarting', pod: pod('Always'), rec: rec([c('a', exited(0))]), phase: 'Running' },
    { what: 'deleted and all stopped by SIGTERM', pod: pod('Always', true), rec: rec([c('a', exited(143))]), phase: 'Failed' },
    { what: 'deleted and all exited 0', pod: pod('Always', true), rec: rec([c('a', exited(0))]), phase: 'Succeeded' },
    { what: 'image not runnable: never started', pod: pod('Always'), rec: rec([c('a', { waiting: { reason: 'ImageNotRunnable' } })]), phase: 'Pending' },
  ])('$what → $phase', ({ pod, rec, phase }) => expect(podPhase(pod, rec)).toBe(phase));
});

describe('podStatus', () => {
  const typeStatus = (s: ReturnType<typeof podStatus>) => Object.fromEntries(s.conditions.map((x) => [x.type, x.status]));

  it.each([
    { what: 'all ready', rec: rec([c('a', running, true), c('b', running, true)]), conditions: { PodScheduled: 'True', Initialized: 'True', ContainersReady: 'True', Ready: 'True' } },
    { what: 'one unready', rec: rec([c('a', running, true), c('b', running, false)]), conditions: { PodScheduled: 'True', Initialized: 'True', ContainersReady: 'False', Ready: 'False' } },
    { what: 'initializing', rec: rec([c('a', waiting)], [c('i', running)], false), conditions: { PodScheduled: 'True', Initialized: 'False', ContainersReady: 'False', Ready: 'False' } },
  ])('conditions: $what', ({ rec, conditions }) => {
    expect(typeStatus(podStatus(pod('Always'), rec, {}, T1))).toEqual(conditions);
  });

  it('names the unready containers', () => {
    const status = podStatus(pod('Always'), rec([c('a', running, true), c('b', running), c('d', waiting)]), {}, T1);
    expect(status.conditions.find((x) => x.type === 'Ready')).toMatchObject({ reason: 'ContainersNotReady', message: 'containers with unready status: [b d]' });
  });

  it('keeps a transition time while the status holds, moves it when it flips', () => {
    const before = podStatus(pod('Always'), rec([c('a', running, false)]), {}, T0);
    const same = podStatus(pod('Always'), rec([c('a', running, false)]), before, T1);
    const flipped = podStatus(pod('Always'), rec([c('a', running, true)]), before, T1);
    expect(same.conditions.find((x) => x.type === 'Ready')?.lastTransitionTime).toBe(T0);
    expect(flipped.conditions.find((x) => x.type === 'Ready')?.lastTransitionTime).toBe(T1);
    expect(flipped.conditions.find((x) => x.type === 'PodScheduled')?.lastTransitionTime).toBe(T0);
  });

  it('keeps what others own: other conditions, qosClass, startTime', () => {
    const current = {
      qosClass: 'BestEffort',
      startTime: T0,
      conditions: [{ type: 'DisruptionTarget', status: 'True' as const, lastTransitionTime: T0, lastProbeTime: null }],
    };
    const status = podStatus(pod('Always'), { ...rec([c('a', running, true)]), startTime: T1 }, current, T1);
    expect(status).toMatchObject({ qosClass: 'BestEffort', startTime: T0 });
    expect(status.conditions.map((x) => x.type)).toEqual(['DisruptionTarget', 'PodScheduled', 'Initialized', 'ContainersReady', 'Ready']);
  });

  it('addresses and container statuses', () => {
    const last = { exitCode: 1, reason: 'Error', startedAt: T0, finishedAt: T0 };
    const status = podStatus(pod('Always'), rec([{ ...c('a', running, true, 2), pid: 42, lastTerminated: last }], [c('i', exited(0))]), {}, T1);
    expect(status).toMatchObject({
      phase: 'Running',
      hostIP: '10.99.0.3',
      hostIPs: [{ ip: '10.99.0.3' }, { ip: 'fd99::3' }],
      podIP: '10.101.1.2',
      podIPs: [{ ip: '10.101.1.2' }, { ip: 'fd99:1::2' }],
      containerStatuses: [
        { name: 'a', image: 'img', imageID: 'img', containerID: 'lab://42', ready: true, started: true, restartCount: 2, state: running, lastState: { terminated: last } },
      ],
      initContainerStatuses: [{ name: 'i', ready: false, restartCount: 0, state: exited(0), lastState: {} }],
    });
  });

  it('no pod IP before the sandbox has one', () => {
    const status = podStatus(pod('Always'), { ...rec([c('a', waiting)]), podIPs: [] }, {}, T1);
    expect(status).not.toHaveProperty('podIP');
    expect(status).not.toHaveProperty('podIPs');
  });
});
