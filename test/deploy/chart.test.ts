import type {
  V1ClusterRole,
  V1ClusterRoleBinding,
  V1ConfigMap,
  V1Container,
  V1DaemonSet,
  V1Deployment,
  V1PolicyRule,
  V1Role,
  V1RoleBinding,
  V1Service,
  V1Volume,
} from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import {
  CHART_DIR,
  CLUSTERS,
  HELM,
  REPO_ROOT,
  SYSTEM_NAMESPACE,
  architectureFlags,
  findObject,
  helmTemplate,
  parseFlags,
  readYaml,
  renderChart,
  renderCluster,
  run,
  valuesFileOf,
  type ClusterName,
  type K8sObject,
} from './chart-fixtures.js';

const READ_VERBS = ['get', 'list', 'watch'];

function container(pod: { spec?: { containers: V1Container[] } }, name: string): V1Container {
  const found = pod.spec?.containers.find((c) => c.name === name);
  if (!found) throw new Error(`no container ${name}`);
  return found;
}

function volume(volumes: V1Volume[] | undefined, name: string): V1Volume {
  const found = volumes?.find((v) => v.name === name);
  if (!found) throw new Error(`no volume ${name}`);
  return found;
}

/** The volume mounted at the directory holding `file`, and the file's name inside it. */
function volumeHolding(c: V1Container, volumes: V1Volume[] | undefined, file: string): [V1Volume, string] {
  const mount = c.volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`));
  if (!mount) throw new Error(`${file} is under no volume mount of ${c.name}`);
  return [volume(volumes, mount.name), file.slice(mount.mountPath.length + 1)];
}

/** Secret name and key a projected/secret volume puts at `path`. */
function secretSourceOf(v: V1Volume, path: string): { secret: string; key: string } | undefined {
  const sources = (v.projected?.sources ?? []).map((s) => ({ name: s.secret?.name, items: s.secret?.items }));
  if (v.secret) sources.push({ name: v.secret.secretName, items: v.secret.items });
  for (const source of sources) {
    const item = source.items?.find((i) => i.path === path);
    if (source.name && item) return { secret: source.name, key: item.key };
  }
  return undefined;
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

function rulesCover(rules: V1PolicyRule[] | undefined, group: string, resource: string): string[] {
  return (rules ?? [])
    .filter((r) => r.apiGroups?.includes(group) && r.resources?.includes(resource))
    .flatMap((r) => r.verbs);
}

const rendered = new Map<ClusterName, K8sObject[]>(
  CLUSTERS.map((cluster) => [cluster, renderCluster(cluster)]),
);
const east = rendered.get('east')!;
const apiserver = findObject<V1Deployment>(east, 'Deployment', 'clustermesh-apiserver');
const apiserverPod = apiserver.spec!.template;
const agent = findObject<V1DaemonSet>(east, 'DaemonSet', 'clustermesh-agent');
const agentPod = agent.spec!.template;

describe('helm lint', () => {
  it.each(CLUSTERS)('passes --strict with the %s values', (cluster) => {
    const result = run(HELM, ['lint', '--strict', CHART_DIR, '-f', valuesFileOf(cluster)]);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('0 chart(s) failed');
  });
});

describe('rendered objects', () => {
  it('puts every namespaced object in the release namespace', () => {
    const clusterScoped = new Set(['ClusterRole', 'ClusterRoleBinding', 'Namespace']);
    for (const object of east.filter((o) => !clusterScoped.has(o.kind))) {
      expect([object.kind, object.metadata.namespace]).toEqual([object.kind, SYSTEM_NAMESPACE]);
    }
    expect(east.map((o) => o.kind)).not.toContain('Namespace');
  });

  it('reads the same under YAML 1.1 (helm, kubectl) and YAML 1.2 (the yaml package)', () => {
    for (const cluster of CLUSTERS) {
      const text = helmTemplate(['-f', valuesFileOf(cluster)]).stdout;
      const asYaml11 = parseAllDocuments(text, { version: '1.1' }).map((doc) => doc.toJS());
      expect(parseAllDocuments(text).map((doc) => doc.toJS())).toEqual(asYaml11);
    }
  });

  it('renders the Namespace only when createNamespace is set', () => {
    const objects = renderCluster('east', ['--set', 'createNamespace=true']);
    expect(findObject<K8sObject>(objects, 'Namespace', SYSTEM_NAMESPACE).metadata.name).toBe(
      SYSTEM_NAMESPACE,
    );
  });

  it('records the cluster identity in the clustermesh-config ConfigMap', () => {
    for (const [cluster, objects] of rendered) {
      const values = readYaml<{ cluster: { name: string; id: number } }>(valuesFileOf(cluster));
      const config = findObject<V1ConfigMap>(objects, 'ConfigMap', 'clustermesh-config');
      expect(config.data).toMatchObject({
        'cluster-name': values.cluster.name,
        'cluster-id': String(values.cluster.id),
      });
    }
  });

  it('uses the image tagged with the package version, which is the chart appVersion', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    const chart = readYaml<{ appVersion: string }>('deploy/helm/clustermesh/Chart.yaml');
    expect(chart.appVersion).toBe(pkg.version);
    expect(container(apiserverPod, 'clustermesh-apiserver').image).toBe(`clustermesh:${pkg.version}`);
    expect(container(agentPod, 'clustermesh-agent').image).toBe(`clustermesh:${pkg.version}`);
  });

  it("defaults the apiserver's etcd to the version upstream/versions.sh pins (tagged as scripts/kind/images.sh tags it)", () => {
    const pinned = /^ETCD_VERSION=v(\S+)$/m.exec(readFileSync(join(REPO_ROOT, 'upstream/versions.sh'), 'utf8'))?.[1];
    expect(pinned).toMatch(/^\d+\.\d+\.\d+$/);
    const values = readYaml<{ apiserver: { etcd: { image: string } } }>('deploy/helm/clustermesh/values.yaml');
    expect(values.apiserver.etcd.image).toBe(`registry.k8s.io/etcd:${pinned}-0`);
    expect(container(apiserverPod, 'etcd').image).toBe(values.apiserver.etcd.image);
  });
});

describe('clustermesh-apiserver Deployment', () => {
  const etcd = container(apiserverPod, 'etcd');
  const etcdFlags = parseFlags(etcd.args!);
  const daemon = container(apiserverPod, 'clustermesh-apiserver');
  const flags = parseFlags(daemon.args!);

  it('runs etcd as a sidecar serving TLS with client-certificate authentication', () => {
    expect(etcdFlags.get('--client-cert-auth')).toBe('true');
    expect(etcdFlags.get('--listen-client-urls')).toMatch(/^https:\/\//);
    const serverFiles = ['--cert-file', '--key-file', '--trusted-ca-file'].map((flag) => {
      const [v, path] = volumeHolding(etcd, apiserverPod.spec!.volumes, etcdFlags.get(flag)!);
      return secretSourceOf(v, path);
    });
    expect(serverFiles).toEqual([
      { secret: 'clustermesh-apiserver-server-cert', key: 'tls.crt' },
      { secret: 'clustermesh-apiserver-server-cert', key: 'tls.key' },
      { secret: 'clustermesh-ca', key: 'ca.crt' },
    ]);
  });

  it('never mounts the CA private key', () => {
    const keys = apiserverPod.spec!.volumes!.flatMap((v) =>
      (v.projected?.sources ?? []).flatMap((s) =>
        (s.secret?.items ?? []).map((i) => `${s.secret!.name}/${i.key}`),
      ),
    );
    expect(keys).not.toContain('clustermesh-ca/ca.key');
    // Whole only the remotes Secret the kvstoremesh reads: its keys are the peers, unknown here.
    expect(apiserverPod.spec!.volumes!.filter((v) => v.secret).map((v) => v.secret!.secretName)).toEqual([
      'clustermesh-remotes',
    ]);
  });

  it('passes exactly the flags ARCHITECTURE.md gives clustermesh-apiserver (in-cluster: no --kubeconfig)', () => {
    const expected = architectureFlags('clustermesh-apiserver').filter((f) => f !== '--kubeconfig');
    expect([...flags.keys()].sort()).toEqual(expected.sort());
    expect(flags.get('--cluster-name')).toBe('east');
    expect(flags.get('--cluster-id')).toBe('1');
    expect(flags.get('--global-namespaces-default')).toBe('true');
  });

  it('reaches the sidecar etcd with the admin client certificate', () => {
    const etcdPort = etcd.ports!.find((p) => p.name === 'etcd')!.containerPort;
    expect(flags.get('--etcd-endpoints')).toBe(`https://127.0.0.1:${etcdPort}`);
    const clientFiles = ['--etcd-ca', '--etcd-cert', '--etcd-key'].map((flag) => {
      const [v, path] = volumeHolding(daemon, apiserverPod.spec!.volumes, flags.get(flag)!);
      return secretSourceOf(v, path);
    });
    expect(clientFiles).toEqual([
      { secret: 'clustermesh-ca', key: 'ca.crt' },
      { secret: 'clustermesh-apiserver-admin-cert', key: 'tls.crt' },
      { secret: 'clustermesh-apiserver-admin-cert', key: 'tls.key' },
    ]);
  });

  it('probes /healthz and /readyz on the port of --health-addr', () => {
    const healthPort = daemon.ports!.find((p) => p.name === 'health')!.containerPort;
    expect(portOf(flags.get('--health-addr')!)).toBe(healthPort);
    expect(daemon.livenessProbe?.httpGet).toMatchObject({ path: '/healthz', port: 'health' });
    expect(daemon.readinessProbe?.httpGet).toMatchObject({ path: '/readyz', port: 'health' });
  });

  it('runs as non-root with the service account bound to its RBAC', () => {
    expect(apiserverPod.spec!.securityContext).toMatchObject({ runAsNonRoot: true });
    expect(apiserverPod.spec!.serviceAccountName).toBe('clustermesh-apiserver');
    for (const c of apiserverPod.spec!.containers) {
      expect(c.securityContext).toMatchObject({
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
      });
    }
  });

  it('documents in the chart README every Secret it mounts', () => {
    const readme = readFileSync(join(CHART_DIR, 'README.md'), 'utf8');
    const secrets = apiserverPod.spec!.volumes!.flatMap((v) =>
      (v.projected?.sources ?? []).map((s) => s.secret!.name!),
    );
    for (const secret of new Set(secrets)) expect(readme).toContain(`\`${secret}\``);
  });
});

describe('kvstoremesh container', () => {
  const mesh = container(apiserverPod, 'kvstoremesh');
  const flags = parseFlags(mesh.args!);

  it('passes exactly the flags ARCHITECTURE.md gives the kvstoremesh (peers from the mounted Secret)', () => {
    const expected = architectureFlags('kvstoremesh').filter(
      (f) => f !== '--namespace' && f !== '--kubeconfig',
    );
    expect([...flags.keys()].sort()).toEqual(expected.sort());
  });

  it('reads the peers from the remotes Secret and writes the etcd beside it as admin', () => {
    const [remotes] = volumeHolding(
      mesh,
      apiserverPod.spec!.volumes,
      `${flags.get('--clustermesh-config')}/east`,
    );
    expect(remotes.secret).toMatchObject({ secretName: 'clustermesh-remotes', optional: true });
    const apiserverFlags = parseFlags(container(apiserverPod, 'clustermesh-apiserver').args!);
    for (const flag of ['--etcd-endpoints', '--etcd-ca', '--etcd-cert', '--etcd-key'])
      expect([flag, flags.get(flag)]).toEqual([flag, apiserverFlags.get(flag)]);
  });

  it('probes /healthz and /readyz on the port of --health-addr', () => {
    const port = mesh.ports!.find((p) => p.name === 'mesh-health')!.containerPort;
    expect(portOf(flags.get('--health-addr')!)).toBe(port);
    expect(mesh.readinessProbe?.httpGet).toMatchObject({ path: '/readyz', port: 'mesh-health' });
  });

  it('tells connect where the agents reach the cache: the Service name, or the endpoint value', () => {
    const configOf = (objects: K8sObject[]) =>
      findObject<V1ConfigMap>(objects, 'ConfigMap', 'clustermesh-config').data!;
    expect(configOf(east)['cache-endpoint']).toBe(
      'https://clustermesh-apiserver.clustermesh-system.svc:2379',
    );
    const set = renderCluster('east', ['--set', 'apiserver.kvstoremesh.endpoint=https://10.99.0.3:2379']);
    expect(configOf(set)['cache-endpoint']).toBe('https://10.99.0.3:2379');
  });

  it('is left out, with the cache entries of the ConfigMap, when disabled', () => {
    const objects = renderCluster('east', ['--set', 'apiserver.kvstoremesh.enabled=false']);
    const pod = findObject<V1Deployment>(objects, 'Deployment', 'clustermesh-apiserver').spec!.template;
    expect(pod.spec!.containers.map((c) => c.name)).toEqual(['etcd', 'clustermesh-apiserver']);
    expect(
      findObject<V1ConfigMap>(objects, 'ConfigMap', 'clustermesh-config').data!['cache-endpoint'],
    ).toBeUndefined();
    expect(findObject<V1ConfigMap>(east, 'ConfigMap', 'clustermesh-config').data!['cache-endpoint']).toBe(
      'https://clustermesh-apiserver.clustermesh-system.svc:2379',
    );
  });
});

describe('etcd NodePort Service', () => {
  it('selects the apiserver pod and forwards to the etcd container port', () => {
    const service = findObject<V1Service>(east, 'Service', 'clustermesh-apiserver');
    expect(apiserverPod.metadata!.labels).toMatchObject(service.spec!.selector!);
    expect(service.spec!.type).toBe('NodePort');
    expect(service.spec!.ports![0].targetPort).toBe('etcd');
  });

  it('uses a different nodePort in east and west, each from its values', () => {
    const nodePorts = CLUSTERS.map((cluster) => {
      const service = findObject<V1Service>(rendered.get(cluster)!, 'Service', 'clustermesh-apiserver');
      const values = readYaml<{ apiserver: { service: { nodePort: number } } }>(valuesFileOf(cluster));
      expect(service.spec!.ports![0].nodePort).toBe(values.apiserver.service.nodePort);
      return service.spec!.ports![0].nodePort;
    });
    expect(new Set(nodePorts).size).toBe(CLUSTERS.length);
  });
});

describe('clustermesh-agent DaemonSet', () => {
  const daemon = container(agentPod, 'clustermesh-agent');
  const flags = parseFlags(daemon.args!);

  it('passes exactly the flags ARCHITECTURE.md gives the agent (in-cluster: no --kubeconfig)', () => {
    const expected = architectureFlags('agent').filter((f) => f !== '--kubeconfig');
    expect([...flags.keys()].sort()).toEqual(expected.sort());
    expect(flags.get('--cluster-name')).toBe('east');
    expect(flags.get('--cluster-id')).toBe('1');
    expect(flags.get('--bpf-pin-dir')).toMatch(/^\/sys\/fs\/bpf\//);
  });

  it('takes --node-name from the downward API', () => {
    expect(flags.get('--node-name')).toBe('$(NODE_NAME)');
    expect(daemon.env).toContainEqual({
      name: 'NODE_NAME',
      valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } },
    });
  });

  it('runs privileged in the host network with bpffs shared both ways', () => {
    expect(agentPod.spec!.hostNetwork).toBe(true);
    expect(daemon.securityContext).toMatchObject({ privileged: true, runAsUser: 0 });
    const bpf = daemon.volumeMounts!.find((m) => m.mountPath === '/sys/fs/bpf')!;
    expect(bpf.mountPropagation).toBe('Bidirectional');
    expect(volume(agentPod.spec!.volumes, bpf.name).hostPath?.path).toBe('/sys/fs/bpf');
  });

  it('mounts the host cgroup v2 path from the values at the --cgroup directory', () => {
    const mount = daemon.volumeMounts!.find((m) => m.mountPath === flags.get('--cgroup'))!;
    expect(volume(agentPod.spec!.volumes, mount.name).hostPath?.path).toBe('/sys/fs/cgroup');
    const hybrid = renderCluster('east', ['--set', 'agent.cgroupHostPath=/sys/fs/cgroup/unified']);
    const hybridPod = findObject<V1DaemonSet>(hybrid, 'DaemonSet', 'clustermesh-agent').spec!.template;
    expect(volume(hybridPod.spec!.volumes, mount.name).hostPath?.path).toBe('/sys/fs/cgroup/unified');
  });

  it('mounts the optional remote-clusters Secret as the --clustermesh-config directory: the cache entries by default, the peers without the kvstoremesh', () => {
    const direct = findObject<V1DaemonSet>(
      renderCluster('east', ['--set', 'apiserver.kvstoremesh.enabled=false']),
      'DaemonSet',
      'clustermesh-agent',
    ).spec!.template;
    for (const [pod, secretName] of [
      [agentPod, 'clustermesh-cache-remotes'],
      [direct, 'clustermesh-remotes'],
    ] as const) {
      const c = container(pod, 'clustermesh-agent');
      const mount = c.volumeMounts!.find(
        (m) => m.mountPath === parseFlags(c.args!).get('--clustermesh-config'),
      )!;
      expect(mount.subPath).toBeUndefined();
      expect(volume(pod.spec!.volumes, mount.name).secret).toMatchObject({ secretName, optional: true });
    }
  });

  it('probes /healthz and /readyz on the port of --health-addr', () => {
    const healthPort = daemon.ports!.find((p) => p.name === 'health')!.containerPort;
    expect(portOf(flags.get('--health-addr')!)).toBe(healthPort);
    expect(daemon.livenessProbe?.httpGet).toMatchObject({ path: '/healthz', port: 'health' });
    expect(daemon.readinessProbe?.httpGet).toMatchObject({ path: '/readyz', port: 'health' });
  });

  it('asks for capabilities instead of privileges when privileged=false', () => {
    const objects = renderCluster('east', ['--set', 'agent.privileged=false']);
    const pod = findObject<V1DaemonSet>(objects, 'DaemonSet', 'clustermesh-agent').spec!.template;
    const c = container(pod, 'clustermesh-agent');
    expect(c.securityContext?.privileged).toBeUndefined();
    expect(c.securityContext?.capabilities?.add).toEqual(
      expect.arrayContaining(['BPF', 'NET_ADMIN', 'SYS_ADMIN']),
    );
    expect(c.volumeMounts!.find((m) => m.mountPath === '/sys/fs/bpf')!.mountPropagation).toBe(
      'HostToContainer',
    );
    expect(pod.spec!.initContainers).toBeUndefined();
  });
});

describe('RBAC', () => {
  const clusterRole = (name: string) =>
    findObject<V1ClusterRole>(east, 'ClusterRole', `${name}-${SYSTEM_NAMESPACE}`);
  const role = (name: string) => findObject<V1Role>(east, 'Role', name);

  it.each([
    ['', 'services'],
    ['', 'nodes'],
    ['', 'pods'],
    ['', 'namespaces'],
    ['discovery.k8s.io', 'endpointslices'],
    ['multicluster.x-k8s.io', 'serviceexports'],
  ])('lets clustermesh-apiserver read %s/%s cluster-wide', (group, resource) => {
    expect(rulesCover(clusterRole('clustermesh-apiserver').rules, group, resource).sort()).toEqual(
      READ_VERBS,
    );
  });

  it('lets clustermesh-apiserver read ConfigMaps and Secrets in its namespace only', () => {
    for (const resource of ['configmaps', 'secrets']) {
      expect(rulesCover(role('clustermesh-apiserver').rules, '', resource).sort()).toEqual(READ_VERBS);
      expect(rulesCover(clusterRole('clustermesh-apiserver').rules, '', resource)).toEqual([]);
    }
  });

  it.each([
    ['', 'services'],
    ['', 'namespaces'],
    ['discovery.k8s.io', 'endpointslices'],
    ['multicluster.x-k8s.io', 'serviceexports'],
  ])('lets the agent read %s/%s cluster-wide', (group, resource) => {
    expect(rulesCover(clusterRole('clustermesh-agent').rules, group, resource).sort()).toEqual(READ_VERBS);
  });

  it('lets the agent read only the remote-clusters Secret it mounts', () => {
    const rules = role('clustermesh-agent').rules!;
    expect(rules).toEqual([
      {
        apiGroups: [''],
        resources: ['secrets'],
        resourceNames: ['clustermesh-cache-remotes'],
        verbs: READ_VERBS,
      },
    ]);
    expect(rulesCover(clusterRole('clustermesh-agent').rules, '', 'secrets')).toEqual([]);
  });

  it('grants no write verb anywhere', () => {
    const roles = east.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role') as unknown as V1Role[];
    const verbs = new Set(roles.flatMap((r) => (r.rules ?? []).flatMap((rule) => rule.verbs)));
    expect([...verbs].sort()).toEqual(READ_VERBS);
  });

  it('binds each role to the service account its workload runs as', () => {
    const bindings = east.filter(
      (o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding',
    ) as unknown as (V1ClusterRoleBinding | V1RoleBinding)[];
    const accountOf = new Map([
      ['clustermesh-apiserver', apiserverPod.spec!.serviceAccountName],
      ['clustermesh-agent', agentPod.spec!.serviceAccountName],
    ]);
    expect(bindings).toHaveLength(4);
    for (const binding of bindings) {
      const owner = binding.roleRef.name.replace(`-${SYSTEM_NAMESPACE}`, '');
      expect(binding.subjects).toEqual([
        { kind: 'ServiceAccount', name: accountOf.get(owner), namespace: SYSTEM_NAMESPACE },
      ]);
      expect(findObject<K8sObject>(east, binding.roleRef.kind, binding.roleRef.name)).toBeDefined();
    }
  });
});

describe('a release in another namespace', () => {
  it('follows --namespace everywhere, cluster-scoped names included', () => {
    const objects = renderChart(['-f', valuesFileOf('west'), '--namespace', 'mesh-b']);
    expect(objects.filter((o) => o.metadata.namespace).every((o) => o.metadata.namespace === 'mesh-b')).toBe(
      true,
    );
    expect(findObject<V1ClusterRole>(objects, 'ClusterRole', 'clustermesh-agent-mesh-b')).toBeDefined();
  });
});
