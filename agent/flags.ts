/**
 * The agent's command line (ARCHITECTURE "Daemon command lines", plus the cache TTL, the Secret's
 * namespace and health-check tuning), parsed into a checked configuration. Pure apart from
 * commander: no file or network access here.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseDuration } from '../lib/duration.js';
import { clusterIDProblem, clusterNameProblem } from '../lib/kvstore/codecs.js';
import { parseCidrList } from '../lib/net/cidr.js';
import { DEFAULT_HEALTH_OPTIONS, DEFAULT_PEER_CACHE_TTL_MS, type HealthCheckerOptions } from './health/index.js';
import { DEFAULT_ROUTE_DRAIN_MS } from './routes.js';
import { parseHostPort, type HostPort } from './server.js';

export interface AgentConfig {
  clusterName: string;
  clusterId: number;
  nodeName: string;
  /** absent = in-cluster (or $KUBECONFIG) */
  kubeconfig?: string;
  /** a mounted peer directory; absent = the `clustermesh-remotes` Secret in `namespace` */
  clustermeshConfig?: string;
  namespace: string;
  bpfPinDir: string;
  cgroup: string;
  healthAddr: HostPort;
  statusAddr: HostPort;
  peerCacheTtlMs: number;
  healthChecks: boolean;
  health: HealthCheckerOptions;
  routes: boolean;
  /** how long a removed peer's routes outlive its backends */
  routeDrainMs: number;
  /** the local cluster's cluster-wide pod and service ranges: never accepted from a peer */
  podCidrs: string[];
  serviceCidrs: string[];
}

function positiveInteger(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`"${text}" is not a positive integer`);
  return n;
}

/** "10.101.0.0/16,fd99:101::/48" (empty: none), each in canonical form. */
function cidrList(flag: string) {
  return (text: string): string[] => {
    try {
      return parseCidrList(text);
    } catch (err) {
      throw new InvalidArgumentError(`${flag}: ${(err as Error).message}`);
    }
  };
}

function clusterName(text: string): string {
  const problem = clusterNameProblem(text);
  if (problem) throw new InvalidArgumentError(problem);
  return text;
}

function clusterId(text: string): number {
  const n = Number(text);
  const problem = clusterIDProblem(n);
  if (problem || text.trim() === '') throw new InvalidArgumentError(problem ?? 'must be an integer from 1 to 255');
  return n;
}

function hostPort(flag: string) {
  return (text: string): HostPort => {
    try {
      return parseHostPort(text, flag);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

/** An option with a parser whose default is shown as written on a command line. */
function parsed<T>(flags: string, description: string, parse: (text: string) => T, defaultText: string): Option {
  return new Option(flags, description).argParser(parse).default(parse(defaultText), defaultText);
}

export function agentCommand(): Command {
  const h = DEFAULT_HEALTH_OPTIONS;
  return new Command('clustermesh-agent')
    .description('clustermesh agent: watches peer clusters and programs the eBPF socket-LB datapath of this node')
    .requiredOption('--cluster-name <name>', 'this cluster’s name', clusterName)
    .requiredOption('--cluster-id <id>', 'this cluster’s ID (1..255)', clusterId)
    .requiredOption('--node-name <name>', 'this node’s name')
    .option('--kubeconfig <file>', 'kubeconfig of the local cluster (absent: in-cluster)')
    .option('--clustermesh-config <dir>', 'directory with one entry per remote cluster (absent: the clustermesh-remotes Secret)')
    .option('--namespace <ns>', 'namespace of the clustermesh-remotes Secret', 'clustermesh-system')
    .requiredOption('--bpf-pin-dir <dir>', 'bpffs directory of this agent’s pinned maps')
    .requiredOption('--cgroup <dir>', 'cgroup v2 directory to attach the socket-LB programs to')
    .addOption(parsed('--health-addr <host:port>', '/healthz, /readyz and /metrics', hostPort('--health-addr'), '0.0.0.0:9879'))
    .addOption(parsed('--status-addr <host:port>', 'local status API for the CLI', hostPort('--status-addr'), '127.0.0.1:9880'))
    .addOption(parsed('--peer-cache-ttl <duration>', 'how long a disconnected peer’s backends are kept', parseDuration, `${DEFAULT_PEER_CACHE_TTL_MS / 60_000}m`))
    .option('--no-health-checks', 'do not probe backends (trust Kubernetes readiness and the peers)')
    .addOption(parsed('--health-interval <duration>', 'time between two probes of a backend', parseDuration, `${h.intervalMs}ms`))
    .addOption(parsed('--health-timeout <duration>', 'probe connect timeout', parseDuration, `${h.timeoutMs}ms`))
    .addOption(parsed('--health-failure-threshold <n>', 'failed probes before quarantine', positiveInteger, String(h.failureThreshold)))
    .addOption(parsed('--health-success-threshold <n>', 'good probes before a quarantined backend returns', positiveInteger, String(h.successThreshold)))
    .addOption(parsed('--health-max-probes <n>', 'concurrent probes at most', positiveInteger, String(h.maxConcurrentProbes)))
    .addOption(parsed('--health-max-probe-rate <n>', 'probe starts per second at most (more backends: longer intervals)', positiveInteger, String(h.maxProbesPerSecond)))
    .option('--no-routes', 'do not install routes to remote pod CIDRs (the CNI routes between clusters)')
    .addOption(parsed('--pod-cidrs <cidrs>', 'the local cluster’s pod ranges, comma-separated (beside its Nodes’ podCIDRs): refused from any peer', cidrList('--pod-cidrs'), ''))
    .addOption(parsed('--service-cidrs <cidrs>', 'the local cluster’s service ranges, comma-separated: refused from any peer', cidrList('--service-cidrs'), ''))
    .addOption(parsed('--route-drain <duration>', 'how long a removed peer’s routes stay after its backends left (open connections keep their path)', parseDuration, `${DEFAULT_ROUTE_DRAIN_MS / 1000}s`));
}

/** What commander hands over: the config's own fields plus the flat tuning flags. */
type RawFlags = Omit<AgentConfig, 'peerCacheTtlMs' | 'health' | 'routeDrainMs'> & {
  peerCacheTtl: number;
  routeDrain: number;
  healthInterval: number;
  healthTimeout: number;
  healthFailureThreshold: number;
  healthSuccessThreshold: number;
  healthMaxProbes: number;
  healthMaxProbeRate: number;
};

export function configFromFlags(flags: RawFlags): AgentConfig {
  const {
    peerCacheTtl,
    routeDrain,
    healthInterval,
    healthTimeout,
    healthFailureThreshold,
    healthSuccessThreshold,
    healthMaxProbes,
    healthMaxProbeRate,
    ...config
  } = flags;
  return {
    ...config,
    peerCacheTtlMs: peerCacheTtl,
    routeDrainMs: routeDrain,
    health: {
      intervalMs: healthInterval,
      timeoutMs: healthTimeout,
      failureThreshold: healthFailureThreshold,
      successThreshold: healthSuccessThreshold,
      maxConcurrentProbes: healthMaxProbes,
      maxProbesPerSecond: healthMaxProbeRate,
    },
  };
}

/** Parses argv (without node and script); commander's errors surface as thrown CommanderErrors. */
export function parseAgentArgs(argv: readonly string[]): AgentConfig {
  const command = agentCommand().exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  command.parse([...argv], { from: 'user' });
  return configFromFlags(command.opts<RawFlags>());
}
