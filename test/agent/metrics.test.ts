/**
 * The datapath programs' counters as the agent's Prometheus counter: read from the source at each
 * scrape, one series per event (the real maps behind it: test/agent/daemon.test.ts).
 */
import { AgentMetrics } from '../../agent/metrics.js';
import { createMetricsRegistry } from '../../lib/metrics.js';
import { FakeDatapath } from './fakes.js';

const NAME = 'clustermesh_agent_datapath_program_events_total';

function registryReading(datapath: FakeDatapath) {
  const registry = createMetricsRegistry();
  new AgentMetrics(registry, { peers: () => [], peerCounts: () => new Map(), programStats: datapath.programStats });
  return registry;
}

async function series(datapath: FakeDatapath): Promise<Record<string, number>> {
  const metric = await registryReading(datapath).getSingleMetric(NAME)!.get();
  return Object.fromEntries(metric.values.map((v) => [String(v.labels.event), v.value]));
}

it.each([
  [{ sockStateFailed: 0, sockPeerReplaced: 0 }, { sock_state_failed: 0, sock_peer_replaced: 0 }],
  [{ sockStateFailed: 3, sockPeerReplaced: 0 }, { sock_state_failed: 3, sock_peer_replaced: 0 }],
  [{ sockStateFailed: 2, sockPeerReplaced: 41 }, { sock_state_failed: 2, sock_peer_replaced: 41 }],
])('reports program counters %j as %j', async (stats, expected) => {
  const datapath = new FakeDatapath();
  datapath.stats = stats;
  expect(await series(datapath)).toEqual(expected);
});

it('follows the counters from one scrape to the next', async () => {
  const datapath = new FakeDatapath();
  const registry = registryReading(datapath);
  const scrape = async () => (await registry.getSingleMetricAsString(NAME)).split('\n').filter((l) => !l.startsWith('#'));
  datapath.stats = { sockStateFailed: 1, sockPeerReplaced: 5 };
  expect(await scrape()).toEqual([`${NAME}{event="sock_state_failed"} 1`, `${NAME}{event="sock_peer_replaced"} 5`]);
  datapath.stats = { sockStateFailed: 1, sockPeerReplaced: 9 };
  expect(await scrape()).toEqual([`${NAME}{event="sock_state_failed"} 1`, `${NAME}{event="sock_peer_replaced"} 9`]);
});
