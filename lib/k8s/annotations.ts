/**
 * Global-service policy from Kubernetes annotations (DESIGN §4). Pure: shared by the
 * clustermesh-apiserver (what to export) and the agent (what to merge).
 *
 * Precedence: our `clustermesh.io/*` name, then Cilium's `service.cilium.io/*`, then the legacy
 * `io.cilium/*` (Cilium's own order for its two names). When several are set, the first one
 * decides; a lower one that disagrees (or is malformed) does not fail the Service but yields a
 * warning, so an operator migrating from Cilium sees the leftover instead of being silently
 * overridden.
 *
 * Values: Cilium lowercases and compares with "true", so "TRUE" is true but "yes", "1" or
 * "true " are silently false. We accept the same spellings (case-insensitive true/false,
 * local/remote/none) and turn everything else into an error naming the annotation and the accepted
 * values: a typo must not quietly make a Service local-only.
 *
 * As in Cilium, shared/affinity (and our min-healthy-local/cluster-preference) are ignored, not
 * validated, when the Service is not global.
 */

export type Affinity = 'local' | 'remote' | 'none';

export interface ServicePolicy {
  global: boolean;
  /** false = consume remote backends, export none. Defaults to true when global. */
  shared: boolean;
  affinity: Affinity;
  /** affinity local only: remote backends are used while fewer local backends are healthy (default 1) */
  minHealthyLocal: number;
  /** remote clusters in order of preference; unlisted clusters come last */
  clusterPreference: string[];
}

export type ParseResult<T> = { ok: true; value: T; warnings: string[] } | { ok: false; error: string };

export const SERVICE_ANNOTATIONS = {
  global: ['clustermesh.io/global', 'service.cilium.io/global', 'io.cilium/global-service'],
  shared: ['clustermesh.io/shared', 'service.cilium.io/shared', 'io.cilium/shared-service'],
  affinity: ['clustermesh.io/affinity', 'service.cilium.io/affinity', 'io.cilium/service-affinity'],
  minHealthyLocal: ['clustermesh.io/min-healthy-local'],
  clusterPreference: ['clustermesh.io/cluster-preference'],
} as const;

export const NAMESPACE_ANNOTATIONS = {
  global: ['clustermesh.io/global', 'clustermesh.cilium.io/global'],
} as const;

function notGlobalPolicy(): ServicePolicy {
  return { global: false, shared: false, affinity: 'none', minHealthyLocal: 0, clusterPreference: [] };
}

const MAX_MIN_HEALTHY_LOCAL = 65535;
const CLUSTER_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const MAX_CLUSTER_NAME_LENGTH = 32;

type Annotations = Readonly<Record<string, string>> | undefined;
/** A value parser: the parsed value, or the "accepted values" part of an error message. */
type ValueParser<T> = (raw: string) => { value: T } | { expected: string };

const parseBoolean: ValueParser<boolean> = (raw) => {
  const lower = raw.toLowerCase();
  if (lower === 'true' || lower === 'false') return { value: lower === 'true' };
  return { expected: 'accepted values: "true", "false" (case-insensitive)' };
};

const parseAffinity: ValueParser<Affinity> = (raw) => {
  const lower = raw.toLowerCase();
  if (lower === 'local' || lower === 'remote' || lower === 'none') return { value: lower };
  return { expected: 'accepted values: "local", "remote", "none" (case-insensitive)' };
};

const parseMinHealthyLocal: ValueParser<number> = (raw) => {
  const n = /^[0-9]{1,5}$/.test(raw) ? Number(raw) : NaN;
  if (n >= 1 && n <= MAX_MIN_HEALTHY_LOCAL) return { value: n };
  return { expected: `accepted values: an integer from 1 to ${MAX_MIN_HEALTHY_LOCAL}` };
};

const parseClusterList: ValueParser<string[]> = (raw) => {
  const expected = 'accepted values: distinct cluster names separated by commas, e.g. "west,north"';
  const names = raw.split(',').map((s) => s.trim());
  const valid = names.every((n) => n.length <= MAX_CLUSTER_NAME_LENGTH && CLUSTER_NAME.test(n));
  if (!valid || new Set(names).size !== names.length) return { expected };
  return { value: names };
};

interface Setting<T> {
  value: T | undefined;
  warnings: string[];
}

/** Reads one setting under its names in precedence order; throws the one-line error when the winner is malformed. */
function readSetting<T>(
  annotations: Annotations,
  keys: readonly string[],
  parse: ValueParser<T>,
): Setting<T> {
  const present = keys.filter((k) => annotations?.[k] !== undefined);
  if (present.length === 0) return { value: undefined, warnings: [] };
  const [winnerKey, ...losers] = present;
  const winnerRaw = annotations![winnerKey];
  const winner = parse(winnerRaw);
  if ('expected' in winner) {
    throw new AnnotationError(
      `annotation ${winnerKey}: ${JSON.stringify(winnerRaw)} is not valid; ${winner.expected}`,
    );
  }
  const warnings = losers
    .filter((k) => {
      const parsed = parse(annotations![k]);
      return 'expected' in parsed || JSON.stringify(parsed.value) !== JSON.stringify(winner.value);
    })
    .map(
      (k) =>
        `annotation ${k}: ${JSON.stringify(annotations![k])} is ignored: ` +
        `${winnerKey}: ${JSON.stringify(winnerRaw)} takes precedence`,
    );
  return { value: winner.value, warnings };
}

class AnnotationError extends Error {}

function collect<T>(parseAll: (warnings: string[]) => T): ParseResult<T> {
  const warnings: string[] = [];
  try {
    return { ok: true, value: parseAll(warnings), warnings };
  } catch (err) {
    if (err instanceof AnnotationError) return { ok: false, error: err.message };
    throw err;
  }
}

function take<T>(warnings: string[], setting: Setting<T>): T | undefined {
  warnings.push(...setting.warnings);
  return setting.value;
}

/** A Service's policy, or a precise error (the Service is then treated as not global by its callers). */
export function parseServicePolicy(annotations: Annotations): ParseResult<ServicePolicy> {
  return collect((warnings) => {
    const global =
      take(warnings, readSetting(annotations, SERVICE_ANNOTATIONS.global, parseBoolean)) ?? false;
    if (!global) return notGlobalPolicy();
    const shared = take(warnings, readSetting(annotations, SERVICE_ANNOTATIONS.shared, parseBoolean)) ?? true;
    const affinity =
      take(warnings, readSetting(annotations, SERVICE_ANNOTATIONS.affinity, parseAffinity)) ?? 'none';
    const minHealthy = take(
      warnings,
      readSetting(annotations, SERVICE_ANNOTATIONS.minHealthyLocal, parseMinHealthyLocal),
    );
    if (minHealthy !== undefined && affinity !== 'local') {
      throw new AnnotationError(
        `annotation ${SERVICE_ANNOTATIONS.minHealthyLocal[0]} applies only to affinity "local" (this Service has ` +
          `"${affinity}"); set ${SERVICE_ANNOTATIONS.affinity[0]}: "local" or remove it`,
      );
    }
    const preference = take(
      warnings,
      readSetting(annotations, SERVICE_ANNOTATIONS.clusterPreference, parseClusterList),
    );
    return {
      global,
      shared,
      affinity,
      minHealthyLocal: affinity === 'local' ? (minHealthy ?? 1) : 0,
      clusterPreference: preference ?? [],
    };
  });
}

/** A Namespace's own globality: true/false when annotated, undefined when it leaves it to the default. */
export function parseNamespaceGlobal(annotations: Annotations): ParseResult<boolean | undefined> {
  return collect((warnings) =>
    take(warnings, readSetting(annotations, NAMESPACE_ANNOTATIONS.global, parseBoolean)),
  );
}

export type ExportDecision = { export: boolean; reason: string };

/**
 * Whether a namespace's objects may be exported to peers at all: its own annotation, else the
 * `--global-namespaces-default`. Applies to its Services (`shouldExport`) and, as Cilium withholds
 * them, to its pods' ipcache entries and identities.
 */
export function namespaceExport(namespaceAnnotations: Annotations, globalNamespacesByDefault: boolean): ExportDecision {
  const namespace = parseNamespaceGlobal(namespaceAnnotations);
  if (!namespace.ok) return { export: false, reason: `namespace ${namespace.error}` };
  if (namespace.value ?? globalNamespacesByDefault) return { export: true, reason: 'namespace is global' };
  const why = namespace.value === undefined ? 'unannotated namespaces are not global by default' : 'annotated not global';
  return { export: false, reason: `namespace is not global (${why})` };
}

/**
 * Whether the clustermesh-apiserver publishes a Service to its peers. Two ways in — a global
 * annotation or an MCS ServiceExport — and two ways out that win over both: a namespace that is
 * not global, and an explicit `shared: "false"` (the owner said "consume, do not export").
 */
export function shouldExport(
  policy: ServicePolicy,
  namespaceAnnotations: Annotations,
  hasServiceExport: boolean,
  globalNamespacesByDefault: boolean,
): ExportDecision {
  const namespace = namespaceExport(namespaceAnnotations, globalNamespacesByDefault);
  if (!namespace.export) return namespace;
  if (policy.global && !policy.shared) return { export: false, reason: 'global but shared is false' };
  if (policy.global) return { export: true, reason: 'global and shared' };
  if (hasServiceExport) return { export: true, reason: 'exported by a ServiceExport' };
  return { export: false, reason: 'neither global nor exported by a ServiceExport' };
}
