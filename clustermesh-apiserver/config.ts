/**
 * The daemon's command line (ARCHITECTURE.md "Daemon command lines"), each flag also read from
 * `CLUSTERMESH_<FLAG>` (e.g. CLUSTERMESH_CLUSTER_NAME), and its validation: pure, and every
 * problem is one UserError line saying which flag and what to pass.
 */
import { Command, Option } from 'commander';
import { clusterIDProblem, clusterNameProblem, isDNSLabel } from '../lib/kvstore/codecs.js';
import { UserError } from '../lib/errors.js';

export interface HostPort {
  host: string;
  port: number;
}

export interface ApiserverConfig {
  clusterName: string;
  clusterId: number;
  /** absent: the in-cluster service account */
  kubeconfig?: string;
  etcdEndpoints: string[];
  etcdCa: string;
  etcdCert: string;
  etcdKey: string;
  healthAddr: HostPort;
  globalNamespacesDefault: boolean;
  /** where the remotes Secret lives (the daemon's own namespace) */
  namespace: string;
}

interface FlagSpec {
  flag: string;
  value: string;
  description: string;
  required?: boolean;
  default?: string;
}

const FLAGS: FlagSpec[] = [
  {
    flag: 'cluster-name',
    value: 'name',
    description: "this cluster's name (≤32 chars, [a-z0-9-])",
    required: true,
  },
  { flag: 'cluster-id', value: 'id', description: "this cluster's ID (1..255)", required: true },
  { flag: 'kubeconfig', value: 'file', description: 'kubeconfig of the cluster (absent: in-cluster)' },
  {
    flag: 'etcd-endpoints',
    value: 'urls',
    description: "comma-separated https:// URLs of this cluster's etcd",
    required: true,
  },
  {
    flag: 'etcd-ca',
    value: 'file',
    description: "CA certificate that signed etcd's server certificate",
    required: true,
  },
  { flag: 'etcd-cert', value: 'file', description: 'client certificate (CN admin) for etcd', required: true },
  { flag: 'etcd-key', value: 'file', description: 'key of the client certificate', required: true },
  {
    flag: 'health-addr',
    value: 'host:port',
    description: '/healthz, /readyz and /metrics listen here',
    default: '0.0.0.0:9880',
  },
  {
    flag: 'global-namespaces-default',
    value: 'bool',
    description: 'whether unannotated namespaces are global (true|false)',
    default: 'true',
  },
  {
    flag: 'namespace',
    value: 'ns',
    description: 'namespace of the clustermesh-remotes Secret',
    default: 'clustermesh-system',
  },
];

export const envName = (flag: string): string => `CLUSTERMESH_${flag.toUpperCase().replace(/-/g, '_')}`;

const camel = (flag: string): string => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** The commander program: flags and env only; `parseConfig` validates what it collected. */
export function buildProgram(): Command {
  const program = new Command('clustermesh-apiserver')
    .description("Publishes this cluster's global services, nodes and identities into its etcd")
    .allowExcessArguments(false);
  for (const spec of FLAGS) {
    const option = new Option(`--${spec.flag} <${spec.value}>`, spec.description).env(envName(spec.flag));
    program.addOption(spec.default === undefined ? option : option.default(spec.default));
  }
  return program;
}

type RawFlags = Record<string, string | undefined>;

/** Pure: validated configuration from the collected flag values (keys in camelCase). */
export function parseConfig(raw: RawFlags): ApiserverConfig {
  for (const spec of FLAGS) {
    if (spec.required && !raw[camel(spec.flag)]?.trim())
      throw new UserError(`missing --${spec.flag} (or ${envName(spec.flag)}): ${spec.description}`);
  }
  const value = (flag: string): string =>
    (raw[camel(flag)] ?? FLAGS.find((f) => f.flag === flag)!.default!).trim();
  return {
    clusterName: clusterName(value('cluster-name')),
    clusterId: clusterId(value('cluster-id')),
    kubeconfig: raw.kubeconfig?.trim() || undefined,
    etcdEndpoints: etcdEndpoints(value('etcd-endpoints')),
    etcdCa: value('etcd-ca'),
    etcdCert: value('etcd-cert'),
    etcdKey: value('etcd-key'),
    healthAddr: parseHostPort(value('health-addr'), '--health-addr'),
    globalNamespacesDefault: parseBool(value('global-namespaces-default'), '--global-namespaces-default'),
    namespace: namespace(value('namespace')),
  };
}

function clusterName(name: string): string {
  const problem = clusterNameProblem(name);
  if (problem) throw new UserError(`--cluster-name ${JSON.stringify(name)} ${problem}`);
  return name;
}

function clusterId(text: string): number {
  const id = /^\d+$/.test(text) ? Number(text) : NaN;
  const problem = clusterIDProblem(id);
  if (problem) throw new UserError(`--cluster-id ${JSON.stringify(text)} ${problem}`);
  return id;
}

function etcdEndpoints(text: string): string[] {
  const endpoints = text
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  for (const endpoint of endpoints) {
    let url: URL | null = null;
    try {
      url = new URL(endpoint);
    } catch {
      // reported below
    }
    if (url?.protocol !== 'https:' || !url.port)
      throw new UserError(
        `--etcd-endpoints: ${JSON.stringify(endpoint)} is not an https://host:port URL (etcd is served with TLS)`,
      );
  }
  if (endpoints.length === 0) throw new UserError('--etcd-endpoints is empty; pass https://host:port URLs');
  return endpoints;
}

/** `host:port`, `[v6]:port` or `:port` (all addresses). */
export function parseHostPort(text: string, flag: string): HostPort {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535)
    throw new UserError(`${flag} ${JSON.stringify(text)} is not host:port (e.g. 0.0.0.0:9880 or [::]:9880)`);
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}

function parseBool(text: string, flag: string): boolean {
  if (text === 'true') return true;
  if (text === 'false') return false;
  throw new UserError(`${flag} ${JSON.stringify(text)} must be true or false`);
}

function namespace(name: string): string {
  if (!isDNSLabel(name))
    throw new UserError(`--namespace ${JSON.stringify(name)} is not a valid namespace name`);
  return name;
}
