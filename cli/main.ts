#!/usr/bin/env node
/**
 * The `clustermesh` command. Exit codes: 0 ok, 1 a user or environment error (one line on stderr),
 * 2 bad usage, 3 not ready in time (`status --wait`, `install --wait`).
 */
import { existsSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { UserError, errorMessage } from '../lib/errors.js';
import { readCaFile } from './ca.js';
import { connectClusters, disconnectClusters } from './connect.js';
import { formatIdentity, identityJson, lookupIdentity, parseIdentityIp } from './identity.js';
import { installCluster, parseClusterIdentity, parseNodePort, readClusterCa, renderChart } from './install.js';
import { DEFAULT_NAMESPACE, openCluster } from './kube.js';
import { registerLabCommands } from './lab.js';
import { type GlobalFlags, parseDuration, parseOutput } from './options.js';
import {
  annotateService,
  annotationPatch,
  parseAffinityFlag,
  parseBooleanFlag,
  parseMinHealthyFlag,
  parseServiceRef,
} from './service.js';
import { formatStatus, gatherStatus, waitForStatus } from './status.js';
import { stringify } from 'yaml';

export const EXIT = { ok: 0, user: 1, usage: 2, notReady: 3 } as const;

const progress = (line: string) => process.stderr.write(`  ${line}\n`);

function globals(command: Command): GlobalFlags {
  return command.optsWithGlobals<GlobalFlags>();
}

/** commander's accumulator for a repeatable option */
function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function buildProgram(): Command {
  const program = new Command('clustermesh')
    .description('multi-cluster mesh: shared global services across Kubernetes clusters')
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)')
    .option('--namespace <ns>', 'namespace clustermesh lives in', DEFAULT_NAMESPACE)
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`clustermesh: ${text.replace(/^error: /, '')}`) });

  program
    .command('install')
    .description('install clustermesh in one cluster: certificates, the chart, wait until ready')
    .option('--context <name>', 'kubeconfig context of the cluster')
    .requiredOption('--cluster-name <name>', 'unique name in the mesh (≤32 of a-z 0-9 -)')
    .requiredOption('--cluster-id <id>', 'unique ID in the mesh (1..255)')
    .option('--ca-from <file|context>', 'reuse a CA: a PEM file with certificate and key, or a context whose cluster has one')
    .option('--node-port <port>', 'NodePort of the etcd Service (default 32378 + cluster ID)')
    .option('--wait', 'wait until the apiserver and every agent are ready')
    .option('--wait-timeout <duration>', 'how long --wait waits', parseDuration, 300_000)
    .option('--render-only', 'print the rendered manifests and change nothing')
    .option('-f, --values <file>', 'a Helm values file for the chart (repeatable)', collect, [])
    .option('--set <key=value>', 'a Helm value for the chart (repeatable)', collect, [])
    .action(async (opts, command: Command) => {
      const { kubeconfig, namespace } = globals(command);
      const identity = parseClusterIdentity(opts.clusterName, opts.clusterId);
      const nodePort = parseNodePort(opts.nodePort, identity.id);
      for (const file of opts.values as string[])
        if (!existsSync(file)) throw new UserError(`--values ${file} does not exist; pass an existing Helm values file`);
      const values = { namespace, identity, nodePort, valuesFiles: opts.values as string[], sets: opts.set as string[] };
      if (opts.renderOnly) {
        process.stdout.write((await renderChart(values)).map((o) => stringify(o)).join('---\n'));
        return;
      }
      if (!opts.context) throw new UserError('--context is required (the cluster to install into)');
      const ca = opts.caFrom ? await caFrom(opts.caFrom, kubeconfig, namespace) : undefined;
      const cluster = openCluster(kubeconfig, opts.context);
      await installCluster(cluster, values, { ca, progress, waitMs: opts.wait ? opts.waitTimeout : undefined });
      process.stderr.write(`installed ${identity.name} in ${cluster.context}\n`);
    });

  for (const [name, verb] of [
    ['connect', 'link'],
    ['disconnect', 'unlink'],
  ] as const) {
    program
      .command(name)
      .description(`${verb} two installed clusters, both directions`)
      .requiredOption('--context <name>', 'first cluster')
      .requiredOption('--destination-context <name>', 'second cluster')
      .addOption(new Option('-o, --output <format>', 'text or json').argParser(parseOutput).default('text'))
      .action(async (opts, command: Command) => {
        const { kubeconfig, namespace } = globals(command);
        const a = openCluster(kubeconfig, opts.context);
        const b = openCluster(kubeconfig, opts.destinationContext);
        const result = await (name === 'connect' ? connectClusters : disconnectClusters)(a, b, namespace);
        if (opts.output === 'json') console.log(JSON.stringify({ [name === 'connect' ? 'connected' : 'disconnected']: [result.a, result.b] }));
        else console.log(`${name === 'connect' ? 'connected' : 'disconnected'} ${result.a.name} (ID ${result.a.id}) ${name === 'connect' ? '<->' : '-/-'} ${result.b.name} (ID ${result.b.id})`);
      });
  }

  program
    .command('status')
    .description('apiserver, agents connected per remote cluster [min/avg/max], global services, errors')
    .option('--context <name>', 'kubeconfig context (default: current)')
    .option('--wait', 'wait until ready (exit 3 if not within --wait-timeout)')
    .option('--wait-timeout <duration>', 'how long --wait waits', parseDuration, 120_000)
    .addOption(new Option('-o, --output <format>', 'text or json').argParser(parseOutput).default('text'))
    .action(async (opts, command: Command) => {
      const { kubeconfig, namespace } = globals(command);
      const cluster = openCluster(kubeconfig, opts.context);
      const report = opts.wait
        ? await waitForStatus(cluster, namespace, opts.waitTimeout)
        : await gatherStatus(cluster, namespace);
      console.log(opts.output === 'json' ? JSON.stringify(report, null, 2) : formatStatus(report));
      if (opts.wait && !report.ready) process.exitCode = EXIT.notReady;
    });

  program
    .command('identity <ip>')
    .description('which cluster of the mesh, namespace/pod and labels an address belongs to (asks the agents of --context)')
    .option('--context <name>', 'kubeconfig context whose agents are asked (default: current)')
    .addOption(new Option('-o, --output <format>', 'text or json').argParser(parseOutput).default('text'))
    .action(async (text: string, opts, command: Command) => {
      const ip = parseIdentityIp(text);
      const { kubeconfig, namespace } = globals(command);
      const answer = await lookupIdentity(openCluster(kubeconfig, opts.context), namespace, ip);
      console.log(opts.output === 'json' ? JSON.stringify(identityJson(answer), null, 2) : formatIdentity(answer));
    });

  const service = program.command('service').description('make a Service global or local');
  service
    .command('global <ns/name>')
    .description('share the Service across connected clusters')
    .option('--context <name>', 'kubeconfig context (default: current)')
    .option('--shared <true|false>', 'export this cluster\'s backends (default true)')
    .option('--affinity <local|remote|none>', 'prefer local or remote backends')
    .option('--min-healthy-local <n>', 'with affinity local: use remote backends below n healthy local ones')
    .action(async (target: string, opts, command: Command) => {
      const ref = parseServiceRef(target);
      const patch = annotationPatch('global', {
        shared: opts.shared === undefined ? undefined : parseBooleanFlag('--shared', opts.shared),
        affinity: opts.affinity === undefined ? undefined : parseAffinityFlag(opts.affinity),
        minHealthyLocal: opts.minHealthyLocal === undefined ? undefined : parseMinHealthyFlag(opts.minHealthyLocal),
      });
      const cluster = openCluster(globals(command).kubeconfig, opts.context);
      await annotateService(cluster, ref, patch);
      console.log(`service ${target} is global in ${cluster.context}`);
    });
  service
    .command('local <ns/name>')
    .description('stop sharing the Service')
    .option('--context <name>', 'kubeconfig context (default: current)')
    .action(async (target: string, opts, command: Command) => {
      const ref = parseServiceRef(target);
      const cluster = openCluster(globals(command).kubeconfig, opts.context);
      await annotateService(cluster, ref, annotationPatch('local'));
      console.log(`service ${target} is local in ${cluster.context}`);
    });

  registerLabCommands(program);
  return program;
}

/** --ca-from: a PEM file, or a kubeconfig context whose cluster holds a clustermesh CA. */
async function caFrom(source: string, kubeconfig: string | undefined, namespace: string) {
  if (existsSync(source)) return readCaFile(source);
  let cluster;
  try {
    cluster = openCluster(kubeconfig, source);
  } catch {
    throw new UserError(`--ca-from ${source}: no such file or kubeconfig context`);
  }
  const ca = await readClusterCa(cluster, namespace);
  if (!ca) throw new UserError(`--ca-from ${source}: context ${source} has no Secret ${namespace}/clustermesh-ca`);
  return ca;
}

export async function run(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      const helpOrVersion = ['commander.helpDisplayed', 'commander.version'].includes(err.code);
      return helpOrVersion || err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (err instanceof UserError) {
      process.stderr.write(`clustermesh: ${err.message.split('\n')[0]}\n`);
      return err.exitCode;
    }
    process.stderr.write(`clustermesh: internal error: ${errorMessage(err)}\n${(err as Error).stack ?? ''}\n`);
    return EXIT.user;
  }
}

process.exit(await run(process.argv));
