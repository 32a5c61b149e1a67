/**
 * `node dist/clustermesh-apiserver/main.js --cluster-name N --cluster-id I …` (flags in
 * ARCHITECTURE.md; each also from CLUSTERMESH_<FLAG>). A bad flag or file is one line on stderr and
 * exit 1; SIGTERM/SIGINT stop cleanly with exit 0.
 */
import { exitOnSignals, exitWithError, parseOrExit } from '../lib/daemon.js';
import { loadDaemonKubeConfig } from '../lib/k8s/kubeconfig.js';
import { loadEtcdClientConfig } from '../lib/kvstore/etcd.js';
import { createLogger } from '../lib/log.js';
import { buildProgram, parseConfig } from './config.js';
import { ApiserverDaemon } from './daemon.js';

const NAME = 'clustermesh-apiserver';

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  parseOrExit(program, argv);
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
      kubeConfig: loadDaemonKubeConfig(config.kubeconfig, ['--kubeconfig']),
      healthAddr: config.healthAddr,
      globalNamespacesDefault: config.globalNamespacesDefault,
      namespace: config.namespace,
      logger,
    });
  } catch (err) {
    exitWithError(NAME, err);
  }
  exitOnSignals(NAME, () => daemon.stop());
  try {
    await daemon.start();
  } catch (err) {
    if (daemon.isStopping) return; // SIGTERM while starting: stop() exits
    exitWithError(NAME, err);
  }
}

await main(process.argv);
