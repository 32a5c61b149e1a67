/**
 * Label and field selectors: parse once into a predicate, then match objects. Pure.
 * Label grammar as in k8s.io/apimachinery/pkg/labels: `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
 * `k notin (a,b)`, `k`, `!k`, `k>n`, `k<n`, comma-separated (AND).
 */
import { badRequest } from './status.js';

export type Predicate = (object: unknown) => boolean;

type Labels = Record<string, string>;
type LabelRequirement = (labels: Labels) => boolean;

const KEY = String.raw`[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?`;
const VALUE = String.raw`(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?`;
const NOT_EXISTS = new RegExp(`^!\\s*(${KEY})$`);
const EXISTS = new RegExp(`^(${KEY})$`);
const EQUALITY = new RegExp(`^(${KEY})\\s*(==|=|!=)\\s*(${VALUE})$`);
const SET = new RegExp(`^(${KEY})\\s+(in|notin)\\s*\\(([^()]*)\\)$`);
const NUMERIC = new RegExp(`^(${KEY})\\s*(<|>)\\s*(-?\\d+)$`);

/** Splits at commas that are not inside `( … )`. */
function splitTopLevel(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < selector.length; i++) {
    const c = selector[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(selector.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

function parseSetValues(list: string, requirement: string): Set<string> {
  const values = list.split(',').map((v) => v.trim());
  const valueOnly = new RegExp(`^${VALUE}$`);
  if (values.some((v) => !valueOnly.test(v))) {
    throw badRequest(`unable to parse requirement: invalid value in "${requirement}"`);
  }
  return new Set(values);
}

function parseLabelRequirement(requirement: string): LabelRequirement {
  let m = NOT_EXISTS.exec(requirement);
  if (m) {
    const key = m[1];
    return (labels) => !(key in labels);
  }
  m = EXISTS.exec(requirement);
  if (m) {
    const key = m[1];
    return (labels) => key in labels;
  }
  m = EQUALITY.exec(requirement);
  if (m) {
    const [, key, op, value] = m;
    return op === '!=' ? (labels) => labels[key] !== value : (labels) => labels[key] === value;
  }
  m = SET.exec(requirement);
  if (m) {
    const [, key, op, list] = m;
    const values = parseSetValues(list, requirement);
    return op === 'in'
      ? (labels) => key in labels && values.has(labels[key])
      : (labels) => !(key in labels) || !values.has(labels[key]);
  }
  m = NUMERIC.exec(requirement);
  if (m) {
    const [, key, op, bound] = m;
    const limit = Number(bound);
    return (labels) => {
      const n = Number(labels[key]);
      return key in labels && Number.isInteger(n) && (op === '>' ? n > limit : n < limit);
    };
  }
  throw badRequest(`unable to parse requirement: "${requirement}" is not a valid label selector requirement`);
}

function labelsOf(object: unknown): Labels {
  const metadata = (object as { metadata?: { labels?: Labels } } | undefined)?.metadata;
  return metadata?.labels ?? {};
}

export function parseLabelSelector(selector: string | undefined): Predicate {
  const requirements = splitTopLevel(selector ?? '').map(parseLabelRequirement);
  return (object) => {
    const labels = labelsOf(object);
    return requirements.every((matches) => matches(labels));
  };
}

const FIELD_REQUIREMENT = /^([A-Za-z0-9_.-]+)\s*(==|=|!=)\s*(.*)$/;

/** A field's value as the real server compares it: a string, "" when absent. */
export function fieldValue(object: unknown, path: string): string {
  let current: unknown = object;
  for (const segment of path.split('.')) {
    if (current === null || typeof current !== 'object') return '';
    current = (current as Record<string, unknown>)[segment];
  }
  return current === undefined || current === null ? '' : String(current);
}

/**
 * Field selectors compare any dotted path (the real server allows a per-kind subset, always
 * including metadata.name and metadata.namespace; accepting more is harmless here).
 */
export function parseFieldSelector(selector: string | undefined): Predicate {
  const requirements = splitTopLevel(selector ?? '').map((requirement) => {
    const m = FIELD_REQUIREMENT.exec(requirement);
    if (!m) throw badRequest(`invalid field selector: "${requirement}"`);
    const [, path, op, value] = m;
    return op === '!='
      ? (o: unknown) => fieldValue(o, path) !== value
      : (o: unknown) => fieldValue(o, path) === value;
  });
  return (object) => requirements.every((matches) => matches(object));
}
