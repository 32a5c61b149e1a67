/**
 * The informers list collections as plain JSON (lib/k8s/informer.ts `listJson`) instead of through
 * client-node's typed list calls, which deserialize every object. Each case is an object as the API
 * server sends it (timestamps, fields nobody reads); the records computed from the plain object
 * must equal those computed from client-node's deserialization of the same JSON.
 */
import type {
  V1EndpointSlice,
  V1Namespace,
  V1Node,
  V1Pod,
  V1Secret,
  V1Service,
} from '@kubernetes/client-node';
import { ObjectSerializer } from '@kubernetes/client-node/dist/gen/models/ObjectSerializer.js';
import {
  labelsOfPod,
  nodeToNodeRecord,
  podToIPCacheEntries,
  serviceToClusterService,
} from '../../clustermesh-apiserver/convert/index.js';
import { peersOfSecret } from '../../clustermesh-apiserver/reconcile/remotes.js';
import { EXPORT_BY_DEFAULT, WEST } from './fixtures.js';

const meta = (name: string, namespace?: string, extra: Record<string, unknown> = {}) => ({
  name,
  ...(namespace ? { namespace } : {}),
  uid: '6b1f0c1e-2f43-4b8a-9a57-0d9b8c1c2a11',
  resourceVersion: '48213',
  creationTimestamp: '2026-11-30T07:00:01Z',
  managedFields: [
    { manager: 'kubectl', operation: 'Update', time: '2026-11-30T07:00:01Z', fieldsType: 'FieldsV1' },
  ],
  ...extra,
});

const wireService = (
  name: string,
  spec: Record<string, unknown>,
  annotations = { 'clustermesh.io/global': 'true' },
) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: meta(name, 'shop', { labels: { app: name, tier: 'web' }, annotations }),
  spec: { type: 'ClusterIP', sessionAffinity: 'None', ipFamilyPolicy: 'PreferDualStack', ...spec },
  status: { loadBalancer: {} },
});

const wireSlice = (
  name: string,
  service: string,
  addressType: string,
  endpoints: unknown[],
  ports: unknown[],
) => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: meta(name, 'shop', {
    labels: {
      'kubernetes.io/service-name': service,
      'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
    },
    ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: service, uid: 'u', controller: true }],
  }),
  addressType,
  endpoints,
  ports,
});

const endpointOf = (address: string, conditions: Record<string, boolean>) => ({
  addresses: [address],
  conditions,
  nodeName: 'west-worker',
  targetRef: { kind: 'Pod', namespace: 'shop', name: `pod-${address}`, uid: 'p' },
  hints: { forZones: [{ name: 'a' }] },
});

const namespaceAnnotations = { 'clustermesh.io/global': 'true' };
const wireNamespace = {
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: meta('shop', undefined, {
    labels: { 'kubernetes.io/metadata.name': 'shop', team: 'cart' },
    annotations: namespaceAnnotations,
  }),
  spec: { finalizers: ['kubernetes'] },
  status: {
    phase: 'Active',
    conditions: [
      {
        type: 'NamespaceDeletionDiscoveryFailure',
        status: 'False',
        lastTransitionTime: '2026-11-30T07:00:02Z',
      },
    ],
  },
};

const wirePod = (name: string, status: Record<string, unknown>, spec: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: meta(name, 'shop', {
    labels: { app: 'cart', 'pod-template-hash': '7d9f', 'app.kubernetes.io/name': 'cart' },
  }),
  spec: {
    serviceAccountName: 'cart',
    nodeName: 'west-worker',
    containers: [
      {
        name: 'main',
        image: 'cart',
        ports: [
          { name: 'http', containerPort: 8080, protocol: 'TCP' },
          { name: 'dns', containerPort: 53, protocol: 'UDP' },
          { containerPort: 9000, protocol: 'TCP' },
        ],
        resources: { limits: { cpu: '500m', memory: '128Mi' } },
      },
    ],
    ...spec,
  },
  status: {
    phase: 'Running',
    startTime: '2026-11-30T07:00:03Z',
    conditions: [
      { type: 'Ready', status: 'True', lastProbeTime: null, lastTransitionTime: '2026-11-30T07:00:04Z' },
    ],
    containerStatuses: [
      {
        name: 'main',
        ready: true,
        restartCount: 0,
        image: 'cart',
        imageID: '',
        state: { running: { startedAt: '2026-11-30T07:00:03Z' } },
      },
    ],
    ...status,
  },
});

const wireNode = (name: string, spec: Record<string, unknown>, addresses: unknown[]) => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: meta(name, undefined, { labels: { 'kubernetes.io/hostname': name } }),
  spec: { ...spec, taints: [{ key: 'k', effect: 'NoSchedule', timeAdded: '2026-11-30T07:00:05Z' }] },
  status: {
    addresses,
    conditions: [
      {
        type: 'Ready',
        status: 'True',
        lastHeartbeatTime: '2026-11-30T07:00:06Z',
        lastTransitionTime: '2026-11-30T07:00:06Z',
      },
    ],
    capacity: { cpu: '2', memory: '8Gi' },
  },
});

/** One object as sent, and what the daemon computes from it given the object's typed or plain form. */
interface Case {
  name: string;
  type: string;
  wire: object;
  convert(obj: never): unknown;
}

const slices = [
  wireSlice(
    'cart-v4',
    'cart',
    'IPv4',
    [
      endpointOf('10.102.1.5', { ready: true }),
      endpointOf('10.102.1.6', { ready: false, serving: true, terminating: true }),
      endpointOf('10.102.1.7', { ready: false }),
    ],
    [
      { name: 'http', port: 8080, protocol: 'TCP' },
      { name: 'dns', port: 53, protocol: 'UDP' },
    ],
  ),
  wireSlice(
    'cart-v6',
    'cart',
    'IPv6',
    [endpointOf('FD99:102:0:1::5', {})],
    [{ name: 'http', port: 8080, protocol: 'TCP', appProtocol: 'http' }],
  ),
  wireSlice('cart-fqdn', 'cart', 'FQDN', [{ addresses: ['cart.example'] }], [{ port: 80 }]),
];
const typedSlices = slices.map(
  (s) => ObjectSerializer.deserialize(s, 'V1EndpointSlice', '') as V1EndpointSlice,
);
const withSlices = (svc: V1Service, typed: boolean) =>
  serviceToClusterService(
    WEST,
    svc,
    typed ? typedSlices : (structuredClone(slices) as unknown as V1EndpointSlice[]),
    EXPORT_BY_DEFAULT,
  );
const typedNamespace = ObjectSerializer.deserialize(wireNamespace, 'V1Namespace', '') as V1Namespace;

const cases: Array<Case & { typedConvert?: (obj: never) => unknown }> = [
  {
    name: 'dual-stack Service with its IPv4, IPv6 and FQDN slices',
    type: 'V1Service',
    wire: wireService('cart', {
      clusterIP: '10.112.0.60',
      clusterIPs: ['10.112.0.60', 'fd99:112::60'],
      ipFamilies: ['IPv4', 'IPv6'],
      ports: [
        { name: 'http', port: 80, protocol: 'TCP', targetPort: 'http' },
        { name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 },
      ],
      selector: { app: 'cart' },
    }),
    convert: (svc: V1Service) => withSlices(svc, false),
    typedConvert: (svc: V1Service) => withSlices(svc, true),
  },
  {
    name: 'headless Service',
    type: 'V1Service',
    wire: wireService('cart', {
      clusterIP: 'None',
      clusterIPs: ['None'],
      ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    }),
    convert: (svc: V1Service) => withSlices(svc, false),
    typedConvert: (svc: V1Service) => withSlices(svc, true),
  },
  {
    name: 'Service with a malformed annotation',
    type: 'V1Service',
    wire: wireService(
      'cart',
      { clusterIP: '10.112.0.61', clusterIPs: ['10.112.0.61'] },
      { 'clustermesh.io/global': 'yes' },
    ),
    convert: (svc: V1Service) => serviceToClusterService(WEST, svc, [], EXPORT_BY_DEFAULT),
  },
  {
    name: 'dual-stack Pod: ipcache entries and identity labels',
    type: 'V1Pod',
    wire: wirePod('cart-1', {
      hostIP: '10.99.0.12',
      hostIPs: [{ ip: '10.99.0.12' }],
      podIP: '10.102.1.5',
      podIPs: [{ ip: '10.102.1.5' }, { ip: 'fd99:102:0:1::5' }],
    }),
    convert: (pod: V1Pod) => ({
      ipcache: podToIPCacheEntries(pod, 0, { namespaceAnnotations, globalNamespacesByDefault: true }),
      labels: labelsOfPod(pod, WEST, structuredClone(wireNamespace) as unknown as V1Namespace),
    }),
    typedConvert: (pod: V1Pod) => ({
      ipcache: podToIPCacheEntries(pod, 0, {
        namespaceAnnotations: typedNamespace.metadata?.annotations,
        globalNamespacesByDefault: true,
      }),
      labels: labelsOfPod(pod, WEST, typedNamespace),
    }),
  },
  {
    name: 'host-network Pod',
    type: 'V1Pod',
    wire: wirePod('agent', { hostIP: '10.99.0.12', podIPs: [{ ip: '10.99.0.12' }] }, { hostNetwork: true }),
    convert: (pod: V1Pod) => podToIPCacheEntries(pod, 0, EXPORT_BY_DEFAULT),
  },
  {
    name: 'Pod without an IP yet',
    type: 'V1Pod',
    wire: wirePod('pending', { phase: 'Pending' }),
    convert: (pod: V1Pod) => podToIPCacheEntries(pod, 0, EXPORT_BY_DEFAULT),
  },
  {
    name: 'dual-stack Node',
    type: 'V1Node',
    wire: wireNode(
      'west-worker',
      { podCIDR: '10.102.1.0/24', podCIDRs: ['10.102.1.0/24', 'fd99:102:0:1::/64'] },
      [
        { type: 'InternalIP', address: '10.99.0.12' },
        { type: 'InternalIP', address: 'fd99:0:0:99::12' },
        { type: 'Hostname', address: 'west-worker' },
      ],
    ),
    convert: (node: V1Node) => nodeToNodeRecord(WEST, node),
  },
  {
    name: 'Node with only a hostname',
    type: 'V1Node',
    wire: wireNode('bare', {}, [{ type: 'Hostname', address: 'bare' }]),
    convert: (node: V1Node) => nodeToNodeRecord(WEST, node),
  },
  {
    name: 'remotes Secret',
    type: 'V1Secret',
    wire: {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: meta('clustermesh-remotes', 'clustermesh-system'),
      type: 'Opaque',
      data: { east: 'ZWFzdA==', 'east.etcd-client.crt': 'Y3J0', Bad_Name: 'eA==' },
    },
    convert: (secret: V1Secret) => peersOfSecret(secret),
  },
];

describe('plain JSON objects convert as client-node’s typed ones', () => {
  it.each(cases)('$name', ({ type, wire, convert, typedConvert }) => {
    const typed = ObjectSerializer.deserialize(structuredClone(wire), type, '') as never;
    const plain = JSON.parse(JSON.stringify(wire)) as never;
    const fromPlain = convert(plain);
    expect(fromPlain).toEqual((typedConvert ?? convert)(typed));
    // the case exercises a conversion that produces something
    expect(JSON.stringify(fromPlain)).not.toMatch(/^(null|\{\}|\[\])$/);
  });
});
