/**
 * `node dist/clustermesh-apiserver/kvstoremesh/main.js --cluster-name N --cluster-id I …`: the
 * kvstoremesh, run beside the clustermesh-apiserver in its pod (as Cilium runs its kvstoremesh
 * sidecar). Peers come from `--clustermesh-config DIR` (the remotes Secret mounted) or, without
 * it, from that Secret through the Kubernetes API; the local Nodes and Services (what no peer may
 * publish, with `--pod-cidrs`/`--service-cidrs`) always through the Kubernetes API. A bad flag or
 * file is one line on stderr and exit 1; SIGTERM/SIGINT stop cleanly (the cache stays for the
 * next start).
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { exitOnSignals, exitWithError, parseOrExit } from '../../lib/daemon.js';
import { parseDuration } from '../../lib/duration.js';
import { errorMessage } from '../../lib/errors.js';
import { loadDaemonKubeConfig } from '../../lib/k8s/kubeconfig.js';
import { parseCidrList } from '../../lib/net/cidr.js';
import { clusterIDProblem, clusterNameProblem } from '../../lib/kvstore/codecs.js';
import { loadEtcdClientConfig } from '../../lib/kvstore/etcd.js';
import { createLogger } from '../../lib/log.js';
import { createMetricsRegistry } from '../../lib/metrics.js';
import {
  DEFAULT_REMOTES_SECRET,
  DirectoryPeerSource,
  SecretPeerSource,
} from '../../lib/remotes/config-source.js';
import { envName, parseHostPort } from '../config.js';
import { startHealthServer } from '../health.js';
import { DEFAULT_PEER_CACHE_TTL_MS, KVStoreMesh } from './kvstoremesh.js';
import { LocalCluster } from './local-cluster.js';

const NAME = 'kvstoremesh';

function checked<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (err) {
      throw new InvalidArgumentError(errorMessage(err));
    }
  };
}

const problemCheck = (problem: (value: string) => string | undefined | null) =>
  checked((text: string) => {
    const why = problem(text);
    if (why) throw new Error(why);
    return text;
  });

export function buildProgram(): Command {
  const flag = (spec: string, description: string) =>
    new Option(spec, description).env(envName(spec.slice(2, spec.indexOf(' '))));
  return new Command(NAME)
    .description('Mirrors every peer cluster into the local etcd under cilium/cache/ for the local agents')
    .allowExcessArguments(false)
    .addOption(
      flag('--cluster-name <name>', "this cluster's name")
        .argParser(problemCheck(clusterNameProblem))
        .makeOptionMandatory(),
    )
    .addOption(
      flag('--cluster-id <id>', "this cluster's ID (1..255)")
        .argParser(
          checked((text) => {
            const id = /^\d+$/.test(text) ? Number(text) : NaN;
            const why = clusterIDProblem(id);
            if (why) throw new Error(why);
            return id;
          }),
        )
        .makeOptionMandatory(),
    )
    .addOption(
      flag(
        '--etcd-endpoints <urls>',
        "comma-separated https:// URLs of this cluster's etcd",
      ).makeOptionMandatory(),
    )
    .addOption(flag('--etcd-ca <file>', "CA of etcd's server certificate").makeOptionMandatory())
    .addOption(
      flag('--etcd-cert <file>', 'client certificate (CN admin) for the local etcd').makeOptionMandatory(),
    )
    .addOption(flag('--etcd-key <file>', 'key of the client certificate').makeOptionMandatory())
    .addOption(
      flag(
        '--clustermesh-config <dir>',
        'the peers (the clustermesh-remotes Secret mounted); absent: read the Secret',
      ),
    )
    .addOption(
      flag(
        '--kubeconfig <file>',
        'kubeconfig for the local Nodes and Services (and the Secret without --clustermesh-config); absent: in-cluster',
      ),
    )
    .addOption(
      flag('--namespace <ns>', 'namespace of the clustermesh-remotes Secret').default('clustermesh-system'),
    )
    .addOption(
      flag('--health-addr <host:port>', '/healthz, /readyz and /metrics listen here')
        .argParser(checked((text) => parseHostPort(text, '--health-addr')))
        .default(parseHostPort('0.0.0.0:9881', '--health-addr'), '0.0.0.0:9881'),
    )
    .addOption(
      flag('--peer-cache-ttl <duration>', "how long a disconnected peer's cache is kept")
        .argParser(parseDuration)
        .default(DEFAULT_PEER_CACHE_TTL_MS, `${DEFAULT_PEER_CACHE_TTL_MS / 60_000}m`),
    )
    .addOption(
      flag(
        '--pod-cidrs <cidrs>',
        "this cluster's pod ranges, comma-separated (beside its Nodes' podCIDRs): refused from any peer",
      )
        .argParser(checked(parseCidrList))
        .default([], ''),
    )
    .addOption(
      flag('--service-cidrs <cidrs>', "this cluster's service ranges, comma-separated: refused from any peer")
        .argParser(checked(parseCidrList))
        .default([], ''),
    );
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  parseOrExit(program, argv);
  const flags = program.opts<{
    clusterName: string;
    clusterId: number;
    etcdEndpoints: string;
    etcdCa: string;
    etcdCert: string;
    etcdKey: string;
    clustermeshConfig?: string;
    kubeconfig?: string;
    namespace: string;
    healthAddr: { host: string; port: number };
    peerCacheTtl: number;
    podCidrs: string[];
    serviceCidrs: string[];
  }>();
  const log = createLogger(NAME);
  const registry = createMetricsRegistry({ defaultMetrics: true, labels: { cluster: flags.clusterName } });
  let mesh: KVStoreMesh;
  let local: LocalCluster;
  try {
    const endpoints = flags.etcdEndpoints
      .split(',')
      .map((e) => e.trim())
      .filter(Boolean);
    const etcd = loadEtcdClientConfig({
      endpoints,
      caFile: flags.etcdCa,
      certFile: flags.etcdCert,
      keyFile: flags.etcdKey,
    });
    const kubeConfig = loadDaemonKubeConfig(flags.kubeconfig, ['--kubeconfig']);
    const source = flags.clustermeshConfig
      ? new DirectoryPeerSource({ dir: flags.clustermeshConfig, log })
      : new SecretPeerSource({
          kubeConfig,
          namespace: flags.namespace,
          secretName: DEFAULT_REMOTES_SECRET,
          log,
        });
    local = new LocalCluster({
      kubeConfig,
      cidrs: { podCidrs: flags.podCidrs, serviceCidrs: flags.serviceCidrs },
      log: log.child({ component: 'local' }),
      registry,
    });
    mesh = new KVStoreMesh({
      cluster: { name: flags.clusterName, id: flags.clusterId },
      etcd,
      source,
      local,
      log,
      registry,
      cacheTtlMs: flags.peerCacheTtl,
    });
  } catch (err) {
    exitWithError(NAME, err);
  }
  let started = false;
  const health = await startHealthServer(flags.healthAddr, {
    registry,
    // Ready once it follows the peers: an unreachable peer must not take the pod (and the etcd
    // the peers read) out of its Service. Per-peer sync is in the metrics.
    notReadyReason: () => (started ? null : 'connecting to the local etcd'),
  }).catch((err: unknown) => exitWithError(NAME, err));
  exitOnSignals(NAME, () => Promise.all([mesh.stop(), local.stop(), health.close()]));
  try {
    void local.start(); // informers restart by themselves; nothing is admitted until they synced
    await mesh.start();
    started = true;
    log.info({ health: health.url }, 'mirroring the peers into the local etcd');
  } catch (err) {
    exitWithError(NAME, err);
  }
}

await main(process.argv);
