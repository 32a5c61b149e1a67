/**
 * Helpers for the deploy/ tests: run the real helm binary, render the chart into parsed objects,
 * read the daemon flag lists and the address plan out of ARCHITECTURE.md, and compare IPv4 CIDRs.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const HELM = join(REPO_ROOT, '.tools/helm');
export const CHART_DIR = join(REPO_ROOT, 'deploy/helm/clustermesh');
export const SYSTEM_NAMESPACE = 'clustermesh-system';
export const CLUSTERS = ['east', 'west'] as const;
export type ClusterName = (typeof CLUSTERS)[number];

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

export interface CommandResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function run(command: string, args: string[], env?: NodeJS.ProcessEnv): CommandResult {
  const result = spawnSync(command, args, { cwd: REPO_ROOT, encoding: 'utf8', env, timeout: 60_000 });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export function valuesFileOf(cluster: ClusterName): string {
  return join(CHART_DIR, 'ci', `${cluster}-values.yaml`);
}

/** `helm template` with the given extra arguments; the raw result, for tests of failures. */
export function helmTemplate(args: string[]): CommandResult {
  return run(HELM, ['template', 'clustermesh', CHART_DIR, '--namespace', SYSTEM_NAMESPACE, ...args]);
}

/** Renders the chart and parses every document; throws with helm's message if it fails. */
export function renderChart(args: string[]): K8sObject[] {
  const result = helmTemplate(args);
  if (result.status !== 0) throw new Error(`helm template ${args.join(' ')} failed: ${result.stderr}`);
  return parseManifests(result.stdout);
}

export function renderCluster(cluster: ClusterName, extraArgs: string[] = []): K8sObject[] {
  return renderChart(['-f', valuesFileOf(cluster), ...extraArgs]);
}

export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`invalid YAML rendered: ${doc.errors[0].message}`);
      return doc.toJS() as K8sObject | null;
    })
    .filter((object): object is K8sObject => object !== null);
}

export function findObject<T>(objects: K8sObject[], kind: string, name: string): T {
  const found = objects.find((object) => object.kind === kind && object.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} among the rendered objects`);
  return found as unknown as T;
}

/** The first YAML document of a file (a path relative to the repository root, or absolute). */
export function readYaml<T>(path: string): T {
  const docs = parseAllDocuments(readFileSync(resolve(REPO_ROOT, path), 'utf8'));
  return docs[0].toJS() as T;
}

/** `--flag=value` arguments → Map(flag → value); a flag given twice is an error. */
export function parseFlags(args: string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (const arg of args) {
    const match = /^(--[a-z0-9-]+)=(.*)$/.exec(arg);
    if (!match) throw new Error(`argument ${arg} is not of the form --flag=value`);
    if (flags.has(match[1])) throw new Error(`flag ${match[1]} given twice`);
    flags.set(match[1], match[2]);
  }
  return flags;
}

/**
 * The flag names of a daemon's command line as ARCHITECTURE.md "Daemon command lines" states it:
 * the backticked text (possibly over several lines) after the line `<daemon>:`.
 */
export function architectureFlags(daemon: 'clustermesh-apiserver' | 'kvstoremesh' | 'agent'): string[] {
  const text = readFileSync(join(REPO_ROOT, 'ARCHITECTURE.md'), 'utf8');
  const section = text.split('### Daemon command lines')[1];
  if (!section) throw new Error('ARCHITECTURE.md has no "Daemon command lines" section');
  const match = new RegExp(`^${daemon}:\\s*\\n\`([^\`]+)\``, 'm').exec(section);
  if (!match) throw new Error(`ARCHITECTURE.md states no command line for ${daemon}`);
  return [...match[1].matchAll(/--[a-z0-9-]+/g)].map((flag) => flag[0]);
}

/** The IPv4 range ARCHITECTURE.md's lab address plan gives for a use such as "east pod CIDR". */
export function addressPlanRange(use: string): string {
  const text = readFileSync(join(REPO_ROOT, 'ARCHITECTURE.md'), 'utf8');
  const row = text
    .split('\n')
    .map((line) => line.split('|').map((cell) => cell.trim()))
    .find((cells) => cells.length === 4 && (cells[2] === use || cells[2].startsWith(`${use} (`)));
  const range = row && /(\d+\.\d+\.\d+\.\d+\/\d+)/.exec(row[1]);
  if (!range) throw new Error(`ARCHITECTURE.md's address plan has no IPv4 row for "${use}"`);
  return range[1];
}

function ipv4ToNumber(address: string): number {
  const octets = address.split('.').map(Number);
  if (octets.length !== 4 || octets.some((octet) => !Number.isInteger(octet) || octet < 0 || octet > 255)) {
    throw new Error(`${address} is not an IPv4 address`);
  }
  return octets.reduce((value, octet) => value * 256 + octet, 0);
}

/** [first, last] addresses of an IPv4 CIDR, as numbers. */
export function ipv4Range(cidr: string): [number, number] {
  const [address, lengthText] = cidr.split('/');
  const length = Number(lengthText);
  if (!Number.isInteger(length) || length < 0 || length > 32)
    throw new Error(`${cidr} has no valid prefix length`);
  const size = 2 ** (32 - length);
  const first = Math.floor(ipv4ToNumber(address) / size) * size;
  return [first, first + size - 1];
}

export function cidrsOverlap(a: string, b: string): boolean {
  const [aFirst, aLast] = ipv4Range(a);
  const [bFirst, bLast] = ipv4Range(b);
  return aFirst <= bLast && bFirst <= aLast;
}
