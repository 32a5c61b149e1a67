import { existsSync, readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { UserError, errorMessage } from '../errors.js';

export interface KubeConfigSource {
  /** a kubeconfig file; absent = $KUBECONFIG, then ~/.kube/config, then the in-cluster service account */
  path?: string;
  /** a context of that kubeconfig; absent = its current-context */
  context?: string;
}

/** Loads a kubeconfig and selects a context, turning every way this fails into one clear line. */
export function loadKubeConfig(source: KubeConfigSource = {}): KubeConfig {
  const kc = new KubeConfig();
  const path = source.path ?? process.env.KUBECONFIG?.split(':')[0];
  if (path) {
    loadFile(kc, path);
  } else if (process.env.KUBERNETES_SERVICE_HOST) {
    kc.loadFromCluster();
  } else {
    try {
      kc.loadFromDefault();
    } catch (err) {
      throw new UserError(`cannot load the default kubeconfig: ${firstLine(err)}; pass --kubeconfig FILE`);
    }
  }
  if (source.context) selectContext(kc, source.context, path ?? 'the default kubeconfig');
  if (!kc.getCurrentCluster()) {
    throw new UserError(
      `kubeconfig ${path ?? '(default)'} has no usable current context; pass --context NAME (known: ${knownContexts(kc)})`,
    );
  }
  return kc;
}

function loadFile(kc: KubeConfig, path: string): void {
  if (!existsSync(path))
    throw new UserError(`kubeconfig ${path} does not exist; pass an existing --kubeconfig FILE`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read kubeconfig ${path}: ${firstLine(err)}`);
  }
  try {
    kc.loadFromString(text);
  } catch (err) {
    throw new UserError(
      `kubeconfig ${path} is corrupt: ${firstLine(err)}; regenerate it (e.g. kind export kubeconfig)`,
    );
  }
  if (kc.getContexts().length === 0) {
    throw new UserError(
      `kubeconfig ${path} defines no contexts; regenerate it (e.g. kind export kubeconfig)`,
    );
  }
}

function selectContext(kc: KubeConfig, context: string, where: string): void {
  if (!kc.getContextObject(context)) {
    throw new UserError(`context "${context}" is not in ${where} (known: ${knownContexts(kc)})`);
  }
  kc.setCurrentContext(context);
}

function knownContexts(kc: KubeConfig): string {
  return (
    kc
      .getContexts()
      .map((c) => c.name)
      .join(', ') || 'none'
  );
}

function firstLine(err: unknown): string {
  return errorMessage(err).split('\n')[0];
}

/**
 * A daemon's kubeconfig: the file given, else the in-cluster service account; never $KUBECONFIG
 * nor a developer's ~/.kube/config. `flags` are the caller's options that would have given one,
 * named in the error.
 */
export function loadDaemonKubeConfig(path: string | undefined, flags: string[]): KubeConfig {
  if (path) return loadKubeConfig({ path });
  if (!process.env.KUBERNETES_SERVICE_HOST)
    throw new UserError(
      `no ${flags.join(' nor ')} given and not running in a cluster (KUBERNETES_SERVICE_HOST is unset); pass ${flags.length === 1 ? `${flags[0]} FILE` : 'one of them'}`,
    );
  const kc = new KubeConfig();
  kc.loadFromCluster();
  return kc;
}
