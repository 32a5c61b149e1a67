/**
 * `clustermesh lab …`: the local two-cluster lab. The only door from the product into lab/: it
 * hands the lab the product's own install bootstrap and connect code as hooks.
 */
import { Command, Option } from 'commander';
import { UserError } from '../lib/errors.js';
import { labDown } from '../lab/cluster/index.js';
import { Lab } from '../lab/topology/apply.js';
import { DEFAULT_LAB_SPEC, LAB_PREFIX_PATTERN } from '../lab/topology/plan.js';
import { formatStatus as formatLabStatus, labStatus } from '../lab/topology/status.js';
import { runDemo } from './demo.js';
import { upAndWait } from './lab-up.js';
import { parseDuration, parseOutput } from './options.js';

function parsePrefix(value: string): string {
  if (!LAB_PREFIX_PATTERN.test(value)) throw new UserError(`--prefix ${value}: use 1-10 of a-z 0-9, starting with a letter`);
  return value;
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
