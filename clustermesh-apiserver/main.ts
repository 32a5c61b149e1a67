/**
 * `node dist/clustermesh-apiserver/main.js --cluster-name N --cluster-id I …` (flags in
 * ARCHITECTURE.md; each also from CLUSTERMESH_<FLAG>). A bad flag or file is one line on stderr and
 * exit 1; SIGTERM/SIGINT stop cleanly with exit 0.
 */
import { CommanderError } from 'commander';
import { KubeConfig } from '@kubernetes/client-node';
import { UserError, errorMessage } from '../lib/errors.js';
import { loadKubeConfig } from '../lib/k8s/kubeconfig.js';
import { loadEtcdClientConfig } from '../lib/kvstore/etcd.js';
import { createLogger } from '../lib/log.js';
import { buildProgram, parseConfig, type ApiserverConfig } from './config.js';
import { ApiserverDaemon } from './daemon.js';

const NAME = 'clustermesh-apiserver';

/** `--kubeconfig` absent means the in-cluster service account, never a developer's ~/.kube/config. */
function kubeConfigFor(config: ApiserverConfig): KubeConfig {
  if (config.kubeconfig) return loadKubeConfig({ path: config.kubeconfig });
  if (!process.env.KUBERNETES_SERVICE_HOST)
    throw new UserError(
      'no --kubeconfig given and not running in a cluster (KUBERNETES_SERVICE_HOST is unset); pass --kubeconfig FILE',
    );
  const kc = new KubeConfig();
  kc.loadFromCluster();
  return kc;
}

function fail(message: string): never {
  process.stderr.write(`${NAME}: ${message.split('\n')[0]}\n`);
  process.exit(1);
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram().exitOverride();
  try {
    program.parse(argv);
  } catch (err) {
    // commander already printed its one-line error (or the help text)
    process.exit(err instanceof CommanderError ? err.exitCode : 1);
  }
  let daemon: ApiserverDaemon;
  try {
    const config = parseConfig(program.opts());
    const logger = createLogger(NAME);
    daemon = new ApiserverDaemon({
      cluster: { name: config.clusterName, id: config.clusterId },
      etcd: loadEtcdClientConfig({
        endpoints: config.etcdEndpoints,
        caFile: config.etcdCa,
        certFile: config.etcdCert,
        keyFile: config.etcdKey,
      }),
      kubeConfig: kubeConfigFor(config),
      healthAddr: config.healthAddr,
      globalNamespacesDefault: config.globalNamespacesDefault,
      namespace: config.namespace,
      logger,
    });
  } catch (err) {
    fail(errorMessage(err));
  }
  const stop = () => void daemon.stop().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  try {
    await daemon.start();
  } catch (err) {
    if (daemon.isStopping) return; // SIGTERM while starting: stop() exits
    fail(errorMessage(err));
  }
}

await main(process.argv);
