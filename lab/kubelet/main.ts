/**
 * The lab kubelet: runs the pods the scheduler binds to one lab node as processes.
 *   nsenter --net=/var/run/netns/<prefix>-<node> node dist/lab/kubelet/main.js \
 *     --kubeconfig F --node-name N --lab-prefix P --state-dir DIR --dist-dir <repo>/dist \
 *     --kubelet-version v1.34.4 [--etcd-binary B] [--image-repository clustermesh] [--cleanup-on-exit]
 * The node's addresses and pod CIDRs come from the lab's address plan (lab/topology/plan.ts).
 */
import { Command } from 'commander';
import { UserError } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { Kubelet } from './kubelet.js';

interface Flags {
  kubeconfig: string;
  nodeName: string;
  labPrefix: string;
  stateDir: string;
  distDir: string;
  kubeletVersion: string;
  etcdBinary?: string;
  imageRepository: string;
  cleanupOnExit?: boolean;
  nodeLabels: string[];
  registerWithTaints: string[];
}

/** `key=value:Effect` (value optional), as kubelet's --register-with-taints. */
export function parseTaint(text: string): { key: string; value?: string; effect: string } {
  const match = /^([^=:]+)(?:=([^:]*))?:(NoSchedule|PreferNoSchedule|NoExecute)$/.exec(text);
  if (!match) throw new UserError(`taint "${text}" must be key[=value]:NoSchedule|PreferNoSchedule|NoExecute`);
  return { key: match[1], ...(match[2] !== undefined ? { value: match[2] } : {}), effect: match[3] };
}

export function parseLabel(text: string): [string, string] {
  const at = text.indexOf('=');
  if (at <= 0) throw new UserError(`node label "${text}" must be key=value`);
  return [text.slice(0, at), text.slice(at + 1)];
}

async function main(): Promise<void> {
  const flags = new Command('lab-kubelet')
    .requiredOption('--kubeconfig <file>', 'client certificate of system:node:<node>')
    .requiredOption('--node-name <name>')
    .requiredOption('--lab-prefix <prefix>')
    .requiredOption('--state-dir <dir>', 'pod volumes, container logs, sandbox records')
    .requiredOption('--dist-dir <dir>', "the built tree's dist/ (the project's image runs from it)")
    .requiredOption('--kubelet-version <version>', 'the Kubernetes version reported in nodeInfo, e.g. v1.34.4')
    .option('--etcd-binary <path>', 'the official etcd binary the etcd image maps to')
    .option('--image-repository <name>', "the project's image repository (the chart's image.repository)", 'clustermesh')
    .option('--cleanup-on-exit', 'on SIGTERM, kill every pod and remove its sandbox')
    .option('--node-labels <key=value>', 'extra node label (repeatable)', (v: string, all: string[]) => [...all, v], [])
    .option('--register-with-taints <taint>', 'taint to register with (repeatable)', (v: string, all: string[]) => [...all, v], [])
    .parse(process.argv)
    .opts<Flags>();
  const log = createLogger('lab-kubelet');
  let kubelet: Kubelet;
  try {
    kubelet = new Kubelet(
      {
        kubeconfig: flags.kubeconfig,
        nodeName: flags.nodeName,
        labPrefix: flags.labPrefix,
        stateDir: flags.stateDir,
        catalog: { projectRepository: flags.imageRepository, distDir: flags.distDir, etcdBinary: flags.etcdBinary },
        kubeletVersion: flags.kubeletVersion,
        cleanupOnExit: flags.cleanupOnExit ?? false,
        labels: Object.fromEntries(flags.nodeLabels.map(parseLabel)),
        taints: flags.registerWithTaints.map(parseTaint),
      },
      log,
    );
  } catch (err) {
    if (err instanceof UserError) {
      console.error(`lab-kubelet: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    log.info('stopping');
    void kubelet.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  await kubelet.start();
}

if (process.argv[1]?.endsWith('/kubelet/main.js')) {
  main().catch((err: unknown) => {
    console.error(`lab-kubelet: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
