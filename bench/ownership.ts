/**
 * Address ownership at import (lib/kvstore/ownership.ts): what one decision costs the agent at
 * mesh scale, every time a peer's records or the local addresses change. 16 peers × 2,000 global
 * services × 4 backends, 8,000 ipcache entries and 100 nodes each (the agent bench's mesh).
 * Baseline, same run: a walk that only parses every backend and ipcache address once (the least
 * any check of them costs). Pure computation, median of the repetitions.
 * Smaller runs: BENCH_OWNERSHIP_PEERS=4 BENCH_OWNERSHIP_SERVICES=500.
 */
import { performance } from 'node:perf_hooks';
import { maskFromPrefixLength } from '../lib/kvstore/codecs.js';
import { admitPeerRecords, type Admission, type LocalAddresses, type PeerRecords } from '../lib/kvstore/ownership.js';
import type { ClusterService, IPCacheEntry, NodeRecord } from '../lib/kvstore/types.js';
import { parseIp } from '../lib/net/ip.js';
import { type BenchResult, type Cell, envInt, figure, percentile, runStandalone } from './report.js';

const PEERS = envInt('BENCH_OWNERSHIP_PEERS', 16);
const SERVICES = envInt('BENCH_OWNERSHIP_SERVICES', 2000);
const BACKENDS = 4;
const NODES = 100;
const IPCACHE = envInt('BENCH_OWNERSHIP_IPCACHE', 8000);
const REPS = envInt('BENCH_OWNERSHIP_REPS', 7);

/** Peer p: node n owns 10.(100+p).n.0/24 and has InternalIP 10.(100+p).250.n. */
function mesh(): PeerRecords[] {
  return Array.from({ length: PEERS }, (_, p) => {
    const name = `peer-${p}`;
    const net = `10.${100 + p}`;
    const nodes: NodeRecord[] = Array.from({ length: NODES }, (_, n) => ({
      Name: `node-${n}`,
      Cluster: name,
      ClusterID: p + 2,
      IPAddresses: [{ Type: 'InternalIP', IP: `${net}.250.${n}` }],
      IPv4AllocCIDR: { IP: `${net}.${n}.0`, Mask: maskFromPrefixLength(24, 4) },
      IPv6AllocCIDR: null,
    }));
    const services: ClusterService[] = Array.from({ length: SERVICES }, (_, s) => ({
      cluster: name,
      namespace: 'default',
      name: `svc-${s}`,
      frontends: {},
      backends: Object.fromEntries(
        Array.from({ length: BACKENDS }, (_, b) => {
          const i = s * BACKENDS + b;
          return [`${net}.${i % NODES}.${(i / NODES) % 250 | 0}`, { http: { Protocol: 'TCP' as const, Port: 8080 } }];
        }),
      ),
      labels: {},
      selector: {},
      includeExternal: true,
      shared: true,
      clusterID: p + 2,
    }));
    const ipcache: IPCacheEntry[] = Array.from({ length: IPCACHE }, (_, i) => ({
      IP: `${net}.${i % NODES}.${((i / NODES) % 250 | 0) + 1}`,
      Mask: null,
      HostIP: `${net}.250.${i % NODES}`,
      ID: ((p + 2) << 16) | 1,
      K8sNamespace: 'default',
      K8sPodName: `pod-${i}`,
      NamedPorts: null,
    }));
    return { name, nodes, services, ipcache };
  });
}

const LOCAL: LocalAddresses = {
  podCidrs: ['10.1.0.0/16'],
  serviceCidrs: ['10.96.0.0/16'],
  clusterIPs: Array.from({ length: SERVICES }, (_, i) => `10.96.${i >> 8}.${i & 255}`),
  nodeIPs: Array.from({ length: NODES }, (_, i) => `10.99.0.${i + 1}`),
};

function median(run: () => void): number {
  const samples = Array.from({ length: REPS }, () => {
    const t0 = performance.now();
    run();
    return performance.now() - t0;
  });
  return percentile(samples, 50);
}

export async function runOwnershipBench(): Promise<BenchResult> {
  const peers = mesh();
  const backends = PEERS * SERVICES * BACKENDS;
  const entries = PEERS * IPCACHE;
  const baseline = median(() => {
    let parsed = 0;
    for (const peer of peers) {
      for (const svc of peer.services) for (const address of Object.keys(svc.backends)) parsed += parseIp(address) ? 1 : 0;
      for (const entry of peer.ipcache) parsed += (parseIp(entry.IP) ? 1 : 0) + (parseIp(entry.HostIP) ? 1 : 0);
    }
    if (parsed !== backends + 2 * entries) throw new Error('baseline walk parsed the wrong count');
  });
  const settled = admitPeerRecords(LOCAL, peers);
  if (settled.refusals.length !== 0) throw new Error(`the bench mesh is not all owned: ${settled.refusals[0].why}`);
  const oneServiceChanged = (): PeerRecords[] => peers.map((peer, p) => (p === 0 ? { ...peer, services: [{ ...peer.services[0], labels: { v: '2' } }, ...peer.services.slice(1)] } : peer));
  const oneNodeAdded = (): PeerRecords[] =>
    peers.map((peer, p) => (p === 0 ? { ...peer, nodes: [...peer.nodes, { ...peer.nodes[0], Name: 'node-new', IPAddresses: [{ Type: 'InternalIP' as const, IP: '10.100.251.1' }], IPv4AllocCIDR: { IP: '10.100.200.0', Mask: maskFromPrefixLength(24, 4) } }] } : peer));
  const cases: [string, () => void][] = [
    ['first decision (nothing known)', () => admitPeerRecords(LOCAL, peers)],
    ['one service of one peer changed', () => admitPeerRecords(LOCAL, oneServiceChanged(), settled)],
    ['a node added (claims changed: every verdict again)', () => admitPeerRecords(LOCAL, oneNodeAdded(), settled)],
    ['the local addresses changed', () => admitPeerRecords({ ...LOCAL }, peers, settled)],
    ['nothing changed', () => admitPeerRecords(LOCAL, peers, settled as Admission)],
  ];
  const rows: Cell[][] = [['baseline: parse every address once', baseline.toFixed(1), '1.00']];
  const figures = [];
  for (const [what, run] of cases) {
    const ms = median(run);
    rows.push([what, ms.toFixed(1), (ms / baseline).toFixed(2)]);
    figures.push(figure(`ownership.${what.split(' ')[0]}-${what.split(' ')[1]}`, `ownership decision: ${what}`, ms, 'ms', { what: 'parsing every address once', value: baseline }));
  }
  return {
    name: 'ownership',
    tables: [
      {
        title: `Address ownership at import: one decision over ${PEERS} peers (${backends} backends, ${entries} ipcache entries, ${PEERS * NODES} nodes)`,
        notes: [`median of ${REPS} runs; ratio against parsing every backend and ipcache address once, in the same run`],
        columns: ['decision', 'ms', '× baseline'],
        rows,
      },
    ],
    figures,
  };
}

runStandalone(import.meta.url, runOwnershipBench);
