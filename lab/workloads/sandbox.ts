/**
 * A running pod's processes, found the way its node's lab kubelet keeps them: the kubelet writes a
 * sandbox record per pod (lab/kubelet/worker.ts, `<state-dir>/pods/<uid>/sandbox.json`) naming the
 * pod's network namespace, and every process of a (not hostNetwork) pod runs in that namespace.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RunningLab } from '../cluster/index.js';
import { killProcesses } from '../cluster/processes.js';
import { podIdentity } from '../topology/plan.js';
import { type SandboxRecord, podsDirOf, sandboxRecordFile } from '../kubelet/worker.js';

/** The network namespace of a (not hostNetwork) pod, from its node's kubelet's sandbox record. */
export function podNetns(running: RunningLab, node: string, pod: string): string {
  const plan = running.plan.nodes.find((n) => n.name === node);
  if (!plan) throw new Error(`the lab has no node ${node}`);
  const podsDir = podsDirOf(running.paths.kubelet(node));
  const record = (existsSync(podsDir) ? readdirSync(podsDir) : [])
    .map((uid) => sandboxRecordFile(join(podsDir, uid)))
    .filter(existsSync)
    .map((file) => JSON.parse(readFileSync(file, 'utf8')) as SandboxRecord)
    .find((r) => r.name === pod && r.sandbox);
  if (!record?.sandbox) throw new Error(`no sandbox of pod ${pod} on ${node}`);
  return podIdentity(plan, record.sandbox).netns;
}

/** SIGKILL to every process of a (not hostNetwork) pod, those in its network namespace; resolves once they are gone. */
export async function killPodProcesses(running: RunningLab, node: string, pod: string): Promise<void> {
  const netns = podNetns(running, node, pod);
  const pids = execFileSync('ip', ['netns', 'pids', netns], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map(Number);
  await killProcesses(pids, `pod ${pod} on ${node}`);
}
