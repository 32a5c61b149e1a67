/**
 * The local cluster of the agent benchmarks (bench/agent.ts, bench/mesh.ts): the official
 * kube-apiserver (test/harness/kube-apiserver.ts) whose service range is on loopback, so a
 * ClusterIP the datapath did not translate goes nowhere, and global Services in it.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { startKubeApiServer, type KubeApiServer } from '../test/harness/kube-apiserver.js';

const LOCAL_SERVICE_CIDR = '127.99.0.0/16';
/** fixtures written at once (kube-apiserver's own limit of requests in flight is 400) */
export const WRITE_CONCURRENCY = 32;

export function startLocalKube(): Promise<KubeApiServer> {
  return startKubeApiServer({ serviceCIDRs: [LOCAL_SERVICE_CIDR] });
}

/** The ClusterIP of the `index`th benchmark Service: past the range's network address and the `kubernetes` Service's. */
export function localServiceIP(index: number): string {
  const n = index + 2;
  return `127.99.${n >> 8}.${n & 255}`;
}

export function globalService(name: string, ip: string): KubernetesObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace: 'default', name, annotations: { 'clustermesh.io/global': 'true' } },
    spec: { clusterIP: ip, clusterIPs: [ip], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
  } as KubernetesObject;
}

/** Global Services svc-0 … svc-(count-1) at localServiceIP(0 …). */
export async function createGlobalServices(kube: KubeApiServer, count: number): Promise<void> {
  await inParallel(
    Array.from({ length: count }, (_, s) => globalService(`svc-${s}`, localServiceIP(s))),
    WRITE_CONCURRENCY,
    (service) => kube.objects.create(service),
  );
}

/** Runs `write` on every item, `limit` at a time. */
export async function inParallel<T>(items: readonly T[], limit: number, write: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await write(items[next++]!);
  };
  await Promise.all(Array.from({ length: limit }, worker));
}
