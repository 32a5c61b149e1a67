import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import { encodeIdentityLabels } from '../../lib/kvstore/codecs.js';
import type { ClusterRef } from './cluster.js';

/**
 * Cilium's security-identity labels of a pod and their kvstore form.
 *
 * Built as Cilium's `SanitizePodLabels` + default `labelsfilter` do, so that an identity we
 * publish means the same label set to a Cilium agent: pod labels without Cilium's own
 * `io.cilium.k8s*` keys and without the volatile ones (`pod-template-hash`, `*.kubernetes.io`, …),
 * plus `io.kubernetes.pod.namespace`, `io.cilium.k8s.policy.serviceaccount`,
 * `io.cilium.k8s.policy.cluster` and the namespace's labels as `io.cilium.k8s.namespace.labels.*`.
 */

const CILIUM_LABEL_PREFIX = 'io.cilium.k8s';
const POD_NAMESPACE = 'io.kubernetes.pod.namespace';
const NAMESPACE_LABELS_PREFIX = 'io.cilium.k8s.namespace.labels';
const SERVICE_ACCOUNT = 'io.cilium.k8s.policy.serviceaccount';
const CLUSTER = 'io.cilium.k8s.policy.cluster';

interface LabelPrefixRule {
  ignore: boolean;
  /** anchored at the start of the key, as Cilium only counts a match at index 0 */
  pattern: RegExp;
}

const escape = (literal: string) => literal.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const include = (regex: string): LabelPrefixRule => ({ ignore: false, pattern: new RegExp(`^(?:${regex})`) });
const ignore = (regex: string): LabelPrefixRule => ({ ignore: true, pattern: new RegExp(`^(?:${regex})`) });

/** Cilium's `defaultLabelPrefixCfg` (pkg/labelsfilter), minus the `reserved:` source rule. */
const DEFAULT_LABEL_RULES: LabelPrefixRule[] = [
  include(escape(POD_NAMESPACE)),
  include(escape(NAMESPACE_LABELS_PREFIX)),
  include(escape('app.kubernetes.io')),
  include(escape(CLUSTER)),
  ignore('io\\.kubernetes'),
  ignore('kubernetes\\.io'),
  ignore(escape('statefulset.kubernetes.io/pod-name')),
  ignore(escape('apps.kubernetes.io/pod-index')),
  ignore(escape('batch.kubernetes.io/job-completion-index')),
  ignore('.*beta\\.kubernetes\\.io'),
  ignore('k8s\\.io'),
  ignore('pod-template-generation'),
  ignore('pod-template-hash'),
  ignore('controller-revision-hash'),
  ignore('annotation.*'),
  ignore('etcd_node'),
];

/** Verdicts of isIdentityLabel by key: pods share few label keys, and each verdict runs every rule. */
const identityLabelVerdicts = new Map<string, boolean>();
/** Bounds the memory of the verdicts whatever the keys pods invent. */
const MAX_REMEMBERED_VERDICTS = 4096;

/**
 * A key is kept when no ignore rule matches it, or when the longest include match is longer than
 * the shortest ignore match (so `io.kubernetes.pod.namespace` beats `!io.kubernetes`).
 */
function isIdentityLabel(key: string): boolean {
  let verdict = identityLabelVerdicts.get(key);
  if (verdict === undefined) {
    if (identityLabelVerdicts.size >= MAX_REMEMBERED_VERDICTS) identityLabelVerdicts.clear();
    verdict = matchesIdentityRules(key);
    identityLabelVerdicts.set(key, verdict);
  }
  return verdict;
}

function matchesIdentityRules(key: string): boolean {
  let included = 0;
  let ignored = 0;
  for (const rule of DEFAULT_LABEL_RULES) {
    const length = rule.pattern.exec(key)?.[0].length;
    if (length === undefined) continue;
    if (rule.ignore) ignored = ignored === 0 ? length : Math.min(ignored, length);
    else included = Math.max(included, length);
  }
  return ignored === 0 || included > ignored;
}

/** Whether a pod gets an identity and ipcache entries: host-network pods use the node's, finished pods none. */
export function podNeedsIdentity(pod: V1Pod): boolean {
  const phase = pod.status?.phase;
  return pod.spec?.hostNetwork !== true && phase !== 'Succeeded' && phase !== 'Failed';
}

/** The identity labels of a pod as `key → value` (all of source `k8s`). */
export function identityLabelsOfPod(
  pod: V1Pod,
  cluster: ClusterRef,
  namespace?: V1Namespace,
): Map<string, string> {
  const labels = new Map<string, string>();
  for (const [key, value] of Object.entries(pod.metadata?.labels ?? {})) {
    if (!key.startsWith(CILIUM_LABEL_PREFIX)) labels.set(key, value);
  }
  for (const [key, value] of Object.entries(namespace?.metadata?.labels ?? {})) {
    labels.set(`${NAMESPACE_LABELS_PREFIX}.${key}`, value);
  }
  labels.set(POD_NAMESPACE, pod.metadata?.namespace ?? 'default');
  const serviceAccount = pod.spec?.serviceAccountName;
  if (serviceAccount) labels.set(SERVICE_ACCOUNT, serviceAccount);
  labels.set(CLUSTER, cluster.name);
  return new Map([...labels].filter(([key]) => isIdentityLabel(key)));
}

/**
 * The kvstore label string of a pod's identity (the value of `cilium/state/identities/v1/id/<id>`).
 * Pass the pod's Namespace when known: Cilium puts the namespace's labels into the identity, so a
 * Cilium peer computes the same string only when they are included.
 */
export function labelsOfPod(pod: V1Pod, cluster: ClusterRef, namespace?: V1Namespace): string {
  const labels = identityLabelsOfPod(pod, cluster, namespace);
  return encodeIdentityLabels(Object.fromEntries([...labels].map(([key, value]) => [`k8s:${key}`, value])));
}
