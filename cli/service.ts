/**
 * `clustermesh service global|local NS/NAME`: sets the global-service annotations. The patch is
 * computed (pure) and checked with the same parser the daemons use before it is sent.
 */
import { UserError } from '../lib/errors.js';
import { type Affinity, SERVICE_ANNOTATIONS, parseServicePolicy } from '../lib/k8s/annotations.js';
import { isDNSLabel } from '../lib/kvstore/codecs.js';
import { type Cluster, mergePatchObject, readObject } from './kube.js';

export interface GlobalOptions {
  shared?: boolean;
  affinity?: Affinity;
  minHealthyLocal?: number;
}

export function parseServiceRef(text: string): { namespace: string; name: string } {
  const [namespace, name, extra] = text.split('/');
  if (extra !== undefined || !name || !isDNSLabel(namespace) || !isDNSLabel(name))
    throw new UserError(`"${text}" is not NAMESPACE/NAME of a Service (DNS labels, e.g. default/echo)`);
  return { namespace, name };
}

export function parseBooleanFlag(flag: string, value: string): boolean {
  if (/^(true|false)$/i.test(value)) return value.toLowerCase() === 'true';
  throw new UserError(`${flag} ${value}: use true or false`);
}

export function parseAffinityFlag(value: string): Affinity {
  if (value === 'local' || value === 'remote' || value === 'none') return value;
  throw new UserError(`--affinity ${value}: use local, remote or none`);
}

export function parseMinHealthyFlag(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1 && n <= 65535)) throw new UserError(`--min-healthy-local ${value}: use an integer from 1 to 65535`);
  return n;
}

/** The merge patch of annotations (null removes). Pure; throws when the result would not parse. */
export function annotationPatch(mode: 'global' | 'local', opts: GlobalOptions = {}): Record<string, string | null> {
  const [global] = SERVICE_ANNOTATIONS.global;
  const [shared] = SERVICE_ANNOTATIONS.shared;
  const [affinity] = SERVICE_ANNOTATIONS.affinity;
  const [minHealthy] = SERVICE_ANNOTATIONS.minHealthyLocal;
  if (mode === 'local') {
    if (opts.shared !== undefined || opts.affinity || opts.minHealthyLocal !== undefined)
      throw new UserError('--shared, --affinity and --min-healthy-local apply only to service global');
    // "false" rather than removal, so a leftover Cilium annotation cannot keep it global
    return { [global]: 'false', [shared]: null, [affinity]: null, [minHealthy]: null };
  }
  const patch: Record<string, string | null> = {
    [global]: 'true',
    [shared]: opts.shared === undefined ? null : String(opts.shared),
    [affinity]: opts.affinity ?? null,
    [minHealthy]: opts.minHealthyLocal === undefined ? null : String(opts.minHealthyLocal),
  };
  const present = Object.fromEntries(Object.entries(patch).filter((e): e is [string, string] => e[1] !== null));
  const parsed = parseServicePolicy(present);
  if (!parsed.ok) throw new UserError(parsed.error.replace(/annotation clustermesh\.io\/min-healthy-local/, '--min-healthy-local'));
  return patch;
}

export async function annotateService(
  cluster: Cluster,
  ref: { namespace: string; name: string },
  patch: Record<string, string | null>,
): Promise<void> {
  const svcRef = { apiVersion: 'v1', kind: 'Service', ...ref };
  if (!(await readObject(cluster, svcRef)))
    throw new UserError(`context ${cluster.context}: Service ${ref.namespace}/${ref.name} does not exist`);
  await mergePatchObject(cluster, svcRef, { metadata: { annotations: patch } });
}
