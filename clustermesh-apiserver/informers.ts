/**
 * The informers of the kinds the daemon reads (lib/k8s/informer.ts: restart with backoff, `synced`).
 */
import { ApiException, type KubeConfig, type KubernetesObject, type V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { errorMessage } from '../lib/errors.js';
import { ResourceInformer } from '../lib/k8s/informer.js';
import { clusterResources, namedSecret, type ClusterResources, type ResourceSource } from '../lib/k8s/resources.js';

function describeError(err: unknown): string {
  if (err instanceof ApiException) return `HTTP ${err.code}`;
  return errorMessage(err).split('\n')[0] ?? '';
}

/** An informer per cluster-wide collection of lib/k8s/resources.ts, and one on the remotes Secret. */
export type ClusterInformers = {
  [K in keyof ClusterResources]: ClusterResources[K] extends ResourceSource<infer T> ? ResourceInformer<T> : never;
} & { remotesSecret: ResourceInformer<V1Secret> };

export interface InformerContext {
  kubeConfig: KubeConfig;
  logger: Logger;
  onError?: (kind: string, err: unknown) => void;
  /** the namespace of the remotes Secret */
  namespace: string;
  remotesSecretName: string;
}

/** One informer per kind the daemon reads (not started). */
export function createInformers(ctx: InformerContext): ClusterInformers {
  const make = <T extends KubernetesObject>(kind: string, source: ResourceSource<T>, optional = false) =>
    new ResourceInformer<T>({
      ...source,
      kubeConfig: ctx.kubeConfig,
      ...(optional ? { optional: { onAbsent: () => ctx.logger.info(`no ${kind} resource in this cluster: MCS exports ignored`) } } : {}),
      onError: (err, { attempt, delayMs }) => {
        ctx.onError?.(kind, err);
        ctx.logger.warn(
          { kind, attempt, retryInMs: delayMs },
          `watching ${kind} failed, retrying: ${describeError(err)}`,
        );
      },
    });
  const resources = clusterResources(ctx.kubeConfig);
  return {
    services: make('Service', resources.services),
    endpointSlices: make('EndpointSlice', resources.endpointSlices),
    nodes: make('Node', resources.nodes),
    pods: make('Pod', resources.pods),
    namespaces: make('Namespace', resources.namespaces),
    serviceExports: make('ServiceExport', resources.serviceExports, true),
    remotesSecret: make('Secret', namedSecret(ctx.kubeConfig, ctx.namespace, ctx.remotesSecretName)),
  };
}
