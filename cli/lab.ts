/**
 * `clustermesh lab …`: the local two-cluster lab. The only door from the product into lab/: it
 * hands the lab the product's own install bootstrap and connect code as hooks.
 */
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { UserError } from '../lib/errors.js';
import { LAB_NAMESPACE, type LabHooks, type RunningLab, labDown, labUp } from '../lab/cluster/index.js';
import { Lab } from '../lab/topology/apply.js';
import { DEFAULT_LAB_SPEC, LAB_PREFIX_PATTERN } from '../lab/topology/plan.js';
import { formatStatus as formatLabStatus, labStatus } from '../lab/topology/status.js';
import { connectClusters } from './connect.js';
import { runDemo } from './demo.js';
import { bootstrapCluster, packageRoot, parseClusterIdentity } from './install.js';
import { openCluster } from './kube.js';
import { parseDuration, parseOutput } from './options.js';
import { formatStatus, waitForStatus } from './status.js';

export const labHooks: LabHooks = {
  async bootstrap({ kubeconfig, context, name, id, nodePort, extraConfig }) {
    return bootstrapCluster(openCluster(kubeconfig, context), {
      namespace: LAB_NAMESPACE,
      identity: parseClusterIdentity(name, String(id)),
      nodePort,
      extraConfig,
    });
  },
  async connect(kubeconfig, a, b) {
    await connectClusters(openCluster(kubeconfig, a), openCluster(kubeconfig, b), LAB_NAMESPACE);
  },
};

export function distDir(): string {
  return join(packageRoot(), 'dist');
}

function parsePrefix(value: string): string {
  if (!LAB_PREFIX_PATTERN.test(value)) throw new UserError(`--prefix ${value}: use 1-10 of a-z 0-9, starting with a letter`);
  return value;
}

const progress = (line: string) => process.stderr.write(`  ${line}\n`);

/** Brings the lab up and waits until every agent of every cluster is connected to the others. */
export async function upAndWait(prefix: string, options: { connect?: boolean; waitMs: number }): Promise<{ running: RunningLab; ready: boolean }> {
  process.stderr.write(`lab ${prefix}: starting\n`);
  const running = await labUp({ prefix, distDir: distDir(), progress, connect: options.connect }, labHooks);
  let ready = true;
  for (const cluster of running.plan.clusters) {
    const report = await waitForStatus(openCluster(running.kubeconfig, cluster.name), LAB_NAMESPACE, options.waitMs);
    process.stderr.write(`${formatStatus(report)}\n`);
    ready &&= report.ready;
  }
  return { running, ready };
}

export function registerLabCommands(program: Command): void {
  const lab = program.command('lab').description('the local two-cluster lab (network namespaces; needs root)');
  const prefixOption = () => new Option('--prefix <prefix>', 'names every namespace, cgroup and pin of the lab').argParser(parsePrefix).default(DEFAULT_LAB_SPEC.prefix);

  lab
    .command('up')
    .description('build east and west, run every daemon, install and connect them')
    .addOption(prefixOption())
    .option('--no-connect', 'install both clusters but do not connect them')
    .option('--wait-timeout <duration>', 'how long to wait for the agents to connect', parseDuration, 60_000)
    .action(async (opts) => {
      const { running, ready } = await upAndWait(opts.prefix, { connect: opts.connect, waitMs: opts.waitTimeout });
      console.log(`lab ${opts.prefix} is up. Try: kubectl --kubeconfig ${running.kubeconfig} --context east get svc -A`);
      if (!ready) process.exitCode = 3;
    });

  lab
    .command('down')
    .description('remove everything of the lab (idempotent)')
    .addOption(prefixOption())
    .action(async (opts) => {
      await labDown(opts.prefix);
      console.log(`lab ${opts.prefix} is down`);
    });

  lab
    .command('status')
    .description('what of the lab exists on this host')
    .addOption(prefixOption())
    .addOption(new Option('-o, --output <format>', 'text or json').argParser(parseOutput).default('text'))
    .action(async (opts) => {
      const status = await labStatus(opts.prefix);
      console.log(opts.output === 'json' ? JSON.stringify(status, null, 2) : formatLabStatus(status));
    });

  lab
    .command('demo')
    .description('failover and failback of a global Service with affinity local, live')
    .addOption(prefixOption())
    .action(async (opts) => {
      process.exitCode = await runDemo(opts.prefix);
    });

  lab
    .command('exec <target> [command...]')
    .description('run a command in a node or pod: lab exec east-worker/echo-1 -- ip addr')
    .addOption(prefixOption())
    .action(async (target: string, command: string[], opts) => {
      if (command.length === 0) throw new UserError('give a command after --, e.g. lab exec east-worker -- ip route');
      const child = Lab.open(opts.prefix).spawnIn(target, command[0], command.slice(1), { stdio: 'inherit' });
      process.exitCode = await new Promise<number>((resolve) => {
        child.once('error', () => resolve(127));
        child.once('exit', (code) => resolve(code ?? 1));
      });
    });
}
