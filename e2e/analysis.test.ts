/** The suite's pure parts: reading request records, agent metrics, the hostile records, the table. */
import { metricByLabel } from './scenarios/agents.js';
import { type Arrival, type TimedRecord, clientStart, failureBound, firstAnswerFrom, lastFailureMs, recoveryMs, timeRecords } from './scenarios/analysis.js';
import { settledOn } from './scenarios/failover.js';
import { hostileRecords } from './scenarios/hostile-peer.js';
import { formatFailures, formatTable, resultOf } from './scenarios/result.js';
import { maskFromPrefixLength } from '../lib/kvstore/codecs.js';
import { parseKeyOfKind } from '../lib/kvstore/keys.js';
import { admitPeerRecords, type LocalAddresses, type PeerRecords } from '../lib/kvstore/ownership.js';
import type { ClusterService, IPCacheEntry, NodeRecord } from '../lib/kvstore/types.js';
import { rejectionClass, validateRemoteRecord } from '../lib/kvstore/validate.js';

function node(cluster: string, name: string, ip: string, podCidr: string): NodeRecord {
  const [address, length] = podCidr.split('/');
  return { Name: name, Cluster: cluster, ClusterID: 2, IPAddresses: [{ Type: 'InternalIP', IP: ip }], IPv4AllocCIDR: { IP: address, Mask: maskFromPrefixLength(Number(length), 4) }, IPv6AllocCIDR: null };
}

/** records at 1000 + i*100 ms: 'e' east, 'w' west, 'x' failed */
function timeline(pattern: string): TimedRecord[] {
  return [...pattern].map((c, i) => ({
    t: i * 100,
    at: 1000 + i * 100,
    answer: c === 'x' ? null : `${c === 'e' ? 'east' : 'west'}/echo-1`,
    error: c === 'x' ? 'timeout' : null,
    cluster: c === 'x' ? null : c === 'e' ? 'east' : 'west',
  }));
}

describe('client clock', () => {
  test('the start is the tightest bound any line gives, and records get send times on our clock', () => {
    const arrivals: Arrival[] = [
      { record: { t: 100, answer: 'east/echo-2', error: null }, arrivedAt: 5110 },
      { record: { t: 0, answer: 'east/echo-1', error: null }, arrivedAt: 5003 },
      { record: { t: 200, answer: null, error: 'timeout' }, arrivedAt: 5600 },
    ];
    expect(clientStart(arrivals)).toBe(5003);
    expect(timeRecords(arrivals).map((r) => [r.at, r.cluster])).toEqual([[5003, 'east'], [5103, 'east'], [5203, null]]);
    expect(clientStart([])).toBeUndefined();
  });
});

describe('recovery figures', () => {
  test.each([
    ['eeeewwww', 1400, 0, 0],
    ['eexxxwww', 1200, 300, 200],
    ['eexxwxww', 1200, 400, 300],
    ['eeeexxxx', 1400, undefined, 300],
  ])('%s since %i: recovery %s ms, last failure %i ms', (pattern, since, recovery, lastFailure) => {
    const records = timeline(pattern);
    expect(recoveryMs(records, since)).toBe(recovery);
    expect(lastFailureMs(records, since)).toBe(lastFailure);
  });

  test('first answer from a cluster, and the settled check', () => {
    const records = timeline('eexxwwww');
    expect(firstAnswerFrom(records, 'west', 1200)).toBe(200);
    expect(firstAnswerFrom(records, 'east', 1300)).toBeUndefined();
    expect(settledOn(records, 0, 'west', 4)).toBe(true);
    expect(settledOn(records, 0, 'west', 5)).toBe(false);
    expect(settledOn(timeline('ewew'), 0, null, 4)).toBe(true);
    expect(settledOn(timeline('ewxw'), 0, null, 4)).toBe(false);
  });

  test('the failure bound is every request of the window plus one in flight at each end', () => {
    expect(failureBound(20, 2000)).toBe(42);
    expect(failureBound(10, 250)).toBe(5);
  });
});

describe('agent metrics', () => {
  const text = [
    '# HELP clustermesh_agent_rejected_records_total Records rejected',
    '# TYPE clustermesh_agent_rejected_records_total counter',
    'clustermesh_agent_rejected_records_total{cluster="west",kind="service",reason="malformed"} 2',
    'clustermesh_agent_rejected_records_total{cluster="west",kind="node",reason="key-mismatch"} 1',
    'clustermesh_agent_rejected_records_total{cluster="south",kind="service",reason="malformed"} 4',
    'clustermesh_agent_datapath_map_ops_total{op="update"} 7',
  ].join('\n');
  test('sums samples by the value of one label, ignoring other metrics and comments', () => {
    expect(metricByLabel(text, 'clustermesh_agent_rejected_records_total', 'reason')).toEqual({ malformed: 6, 'key-mismatch': 1 });
    expect(metricByLabel(text, 'clustermesh_agent_rejected_records_total', 'cluster')).toEqual({ west: 3, south: 4 });
    expect(metricByLabel(text, 'clustermesh_agent_absent', 'reason')).toEqual({});
  });
});

describe('hostile records', () => {
  const east = { name: 'east', id: 1, podIP: '10.101.1.11', nodeIP: '10.99.0.11', nodePodCidr: '10.101.1.0/24', clusterIP: '10.111.0.20', serviceCidr: '10.111.0.0/16' };
  const west = { name: 'west', id: 2, podCidr: '10.102.0.0/16', nodePodCidr: '10.102.1.0/24' };
  const records = hostileRecords(west, east);
  test("all but one sit under the prefixes east's agents read from west", () => {
    const read = records.filter((r) => r.read);
    expect(read.length).toBe(records.length - 1);
    for (const r of read) expect(r.key).toMatch(/^cilium\/state\/(services\/v1\/west\/|nodes\/v1\/west\/|identities\/v1\/id\/|ip\/v1\/default\/)/);
    expect(records.find((r) => !r.read)!.key).toBe('cilium/state/services/v1/east/e2e/echo');
  });
  test('they claim east, carry a wrong ID, are garbage, or weigh 1 MiB', () => {
    const values = records.map((r) => r.value);
    expect(values.some((v) => v.length >= 1024 * 1024)).toBe(true);
    expect(values.some((v) => /"cluster":"east"/.test(v))).toBe(true);
    expect(values.some((v) => /"clusterID":200/.test(v))).toBe(true);
    expect(values.filter((v) => { try { JSON.parse(v); return false; } catch { return true; } }).length).toBeGreaterThanOrEqual(2);
    expect(records.some((r) => r.key === `cilium/state/identities/v1/id/${(1 << 16) | 4242}`)).toBe(true);
  });
  test('the five addresses once accepted are backends of the forged Service', () => {
    const forged = JSON.parse(records.find((r) => r.key === 'cilium/state/services/v1/west/e2e/forged')!.value) as { backends: Record<string, unknown> };
    expect(Object.keys(forged.backends)).toEqual(expect.arrayContaining(['127.0.0.1', '0.0.0.0', '224.0.0.1', east.podIP, east.clusterIP]));
  });
  test('the reasons (and the check giving each) the scenario expects are the ones validation and ownership give', () => {
    const local: LocalAddresses = { podCidrs: [east.nodePodCidr], serviceCidrs: [east.serviceCidr], clusterIPs: [east.clusterIP], nodeIPs: [east.nodeIP] };
    const peer: PeerRecords = { name: west.name, nodes: [node(west.name, 'west-worker', '10.99.0.21', west.nodePodCidr)], services: [], ipcache: [] };
    const validation: string[] = [];
    for (const r of records.filter((record) => record.read)) {
      const kind = (['service', 'node', 'identity', 'ipcache'] as const).find((k) => parseKeyOfKind(k, r.key));
      const decoded = validateRemoteRecord(kind!, r.key, Buffer.from(r.value), { cluster: west.name, clusterID: west.id });
      if (!decoded.ok) {
        validation.push(rejectionClass(r.key, decoded.reason));
        expect([r.key, rejectionClass(r.key, decoded.reason), r.refusedBy]).toEqual([r.key, r.reasons[0], 'validation']);
        continue;
      }
      expect([r.key, r.refusedBy]).toEqual([r.key, 'ownership']);
      if (kind === 'service') (peer.services as ClusterService[]).push(decoded.value as ClusterService);
      else if (kind === 'node') (peer.nodes as NodeRecord[]).push(decoded.value as NodeRecord);
      else if (kind === 'ipcache') (peer.ipcache as IPCacheEntry[]).push(decoded.value as IPCacheEntry);
    }
    const refused = admitPeerRecords(local, [peer]).refusals.map((r) => r.reason);
    const expected = records.flatMap((r) => r.reasons);
    expect([...validation, ...refused].sort()).toEqual(expected.sort());
  });
});

describe('scenario table', () => {
  test('one aligned line per scenario', () => {
    const table = formatTable([
      resultOf('1', 'graceful failover', timeline('eeww'), { ms: 63, meaning: 'first answer from west' }),
      resultOf('2', 'abrupt failover', timeline('exxw'), { ms: null, meaning: 'recovery' }),
    ]);
    const lines = table.split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[2]).toMatch(/^1\s+graceful failover\s+4\s+0\s+63 ms\s+first answer from west$/);
    expect(lines[3]).toMatch(/^2\s+abrupt failover\s+4\s+2\s+-\s+recovery$/);
  });

  test('each failed request: when, how, and who answered around it; scenarios without failures left out', () => {
    const results = [
      resultOf('1', 'graceful failover', timeline('eeww'), { ms: 63, meaning: 'first answer from west' }),
      resultOf('2', 'abrupt failover', timeline('exxw'), { ms: null, meaning: 'recovery' }),
      resultOf('7', 'dead cluster', timeline('x'.repeat(14)), { ms: null, meaning: 'drop' }),
    ];
    const lines = formatFailures(results).split('\n');
    expect(lines).toEqual([
      '2: failed +100 ms timeout (east before, west after), +200 ms timeout (east before, west after)',
      expect.stringMatching(/^7: failed \+0 ms timeout \(- before, - after\), .*\+1100 ms timeout \(- before, - after\), and 2 more$/),
    ]);
  });
});
