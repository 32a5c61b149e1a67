#!/usr/bin/env node
/**
 * The agent daemon: `node dist/agent/main.js --cluster-name N --cluster-id I --node-name N …`
 * (flags: agent/flags.ts). Errors at start are one line on stderr and exit 1. SIGTERM/SIGINT stop
 * it and exit 0, leaving the pinned maps and the cgroup attachments in place, so the datapath
 * keeps serving while the agent is down or being upgraded.
 */
import { CommanderError } from 'commander';
import { exitWithError } from '../lib/daemon.js';
import { Datapath } from '../lib/datapath/index.js';
import { errorMessage } from '../lib/errors.js';
import { loadKubeConfig } from '../lib/k8s/kubeconfig.js';
import { createLogger, type Logger } from '../lib/log.js';
import { createMetricsRegistry } from '../lib/metrics.js';
import { Agent, NO_HEALTH_CHECKS } from './agent.js';
import { parseAgentArgs, type AgentConfig } from './flags.js';
import { HealthChecker } from './health/index.js';
import { LocalInformers } from './local/informers.js';
import { createRemoteClusters } from './remote-wiring.js';
import { RouteManager } from './routes.js';

async function run(config: AgentConfig, log: Logger): Promise<Agent> {
  const kubeConfig = loadKubeConfig({ path: config.kubeconfig });
  const metrics = createMetricsRegistry({ defaultMetrics: true, labels: { cluster: config.clusterName, node: config.nodeName } });
  const datapath = await Datapath.open({ pinDir: config.bpfPinDir });
  try {
    datapath.attach(config.cgroup);
  } catch (err) {
    datapath.close();
    throw new Error(`cannot attach the socket-LB programs to cgroup ${config.cgroup}: ${errorMessage(err)}`);
  }
  const cluster = { name: config.clusterName, id: config.clusterId };
  const cidrs = { podCidrs: config.podCidrs, serviceCidrs: config.serviceCidrs };
  const local = new LocalInformers({ kubeConfig, log: log.child({ component: 'local' }), metrics, cidrs });
  const agent = new Agent({
    cluster,
    nodeName: config.nodeName,
    local,
    remotes: createRemoteClusters({ config, kubeConfig, cluster, localAddresses: () => local.localAddresses(), log: log.child({ component: 'remote' }), metrics }),
    health: config.healthChecks ? new HealthChecker(config.health) : NO_HEALTH_CHECKS,
    datapath,
    ipcache: datapath,
    routes: config.routes ? new RouteManager({ log: log.child({ component: 'routes' }) }) : undefined,
    routeDrainMs: config.routeDrainMs,
    peerCacheTtlMs: config.peerCacheTtlMs,
    metrics,
    log,
    healthAddr: config.healthAddr,
    statusAddr: config.statusAddr,
  });
  await agent.start();
  log.info({ health: agent.healthUrl, status: agent.statusUrl, cluster, node: config.nodeName }, 'agent started');
  return agent;
}

function parseOrExit(argv: string[]): AgentConfig {
  try {
    return parseAgentArgs(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help') process.exit(0);
      process.stderr.write(`clustermesh-agent: ${err.message.replace(/^error: /, '')}\n`);
      process.exit(2);
    }
    throw err;
  }
}

async function main(): Promise<void> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    const { agentCommand } = await import('./flags.js');
    process.stdout.write(agentCommand().helpInformation());
    return;
  }
  const config = parseOrExit(process.argv.slice(2));
  const log = createLogger('clustermesh-agent');
  let agent: Agent;
  try {
    agent = await run(config, log);
  } catch (err) {
    exitWithError('clustermesh-agent', err);
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping; the datapath stays in place');
    agent.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: errorMessage(err) }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();
