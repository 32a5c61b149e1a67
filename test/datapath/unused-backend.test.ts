/**
 * The backend maps are arrays (bpf/sock_lb.c): every ID has an entry, and an unused one is all
 * zero. Even when a slot names such an entry (the planner never writes that, so the test writes
 * the maps itself), the programs must not send a connect to 0.0.0.0:0 but leave it untranslated.
 */
import { join } from 'node:path';
import { codecs, constants } from '../../lib/datapath/codecs.js';
import type { DatapathService } from '../../lib/datapath/index.js';
import { loadNative, packageRoot } from '../../native/index.js';
import { ADDRS, BACKEND_NAMES, createDatapathLab, type DatapathLab } from './lab.js';

const VIP_PORT = 80;
const CONNECTS = 300;

let lab: DatapathLab;

beforeAll(async () => {
  lab = await createDatapathLab();
});

afterAll(async () => {
  await lab?.teardown();
});

it('never translates a connect to a slot whose backend entry is unused (all zero)', async () => {
  const { vip, backends } = ADDRS[4];
  const ports: number[] = [];
  for (const [i, addr] of backends.entries()) ports.push((await lab.servers.listenTcp(addr, BACKEND_NAMES[i])).port);
  const service: DatapathService = { vip, port: VIP_PORT, proto: 'TCP', backends: backends.map((addr, i) => ({ addr, port: ports[i], state: 'active', clusterId: 0 })) };
  lab.dp.reconcile([service]);

  // the pinned maps, opened a second time: clear the backend slot 1 names, leave the slot as it is
  const native = loadNative();
  const object = native.openObject(join(packageRoot, 'bpf', 'sock_lb.o'), lab.pinDir);
  try {
    const svc = object.maps.cm_lb4_svc;
    const slot0 = native.mapLookup(svc.fd, codecs.lb4_key.encode({ address: vip, dport: VIP_PORT, backend_slot: constants.CM_SERVICE_SLOT, proto: constants.CM_PROTO_TCP }), svc.valueSize);
    expect(slot0).not.toBeNull();
    const cleared = codecs.lb4_service.decode(slot0!).backends[0]; // slot 1, inline
    const id = Buffer.alloc(4);
    id.writeUInt32LE(cleared);
    native.mapUpdate(object.maps.cm_lb4_be.fd, id, Buffer.alloc(object.maps.cm_lb4_be.valueSize));
  } finally {
    native.closeObject(object.id);
  }

  const { reached, errors } = await lab.client.tcpConnects(vip, VIP_PORT, CONNECTS);
  // the other backend answers; the cleared one's share goes to the VIP itself, which has no route
  expect(Object.keys(reached)).toHaveLength(1);
  expect(Object.keys(errors)).toEqual(['ENETUNREACH']);
  expect(Object.values(reached)[0] + errors.ENETUNREACH).toBe(CONNECTS);
});
