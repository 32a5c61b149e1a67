/**
 * The CLI against two (and more) official kube-apiservers (test/harness/kube-apiserver.ts, RBAC
 * on, no kubelet: the chart's workloads exist but run no pods): install (a Helm release), connect,
 * disconnect, service, status, and every kind of bad input — each a one-line error, a non-zero
 * exit and nothing written in any cluster (no object of a kind the CLI or its chart writes changed).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { createCA, issueClientCert } from '../../lib/pki.js';
import { kubeBinariesRequirement, startKubeApiServer, type KubeApiServer, type ObjectRef } from '../harness/kube-apiserver.js';
import { describeRequiring } from '../harness/requirements.js';
import { startAll } from '../harness/start-all.js';
import { type CliResult, cliBuiltRequirement, errorLines, runCli, writeKubeconfig } from './helpers.js';

const NS = 'clustermesh-system';
const names = ['east', 'west', 'dupname', 'dupid', 'fresh'] as const;
type Name = (typeof names)[number];

let servers: Record<Name, KubeApiServer>;
let dir: string;
let kubeconfig: string;

const cli = (...args: string[]) => runCli(['--kubeconfig', kubeconfig, ...args]);

const SECRET = { apiVersion: 'v1', kind: 'Secret' };
const SERVICE = { apiVersion: 'v1', kind: 'Service' };

async function secretData(server: KubeApiServer, name: string): Promise<Record<string, string> | undefined> {
  if (!(await server.objects.exists(SECRET, NS, name))) return undefined;
  const data = ((await server.objects.get(SECRET, NS, name)) as { data?: Record<string, string> }).data ?? {};
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
}

/** Every kind the CLI writes itself or through the chart (deploy/helm/clustermesh/templates/). */
const WRITTEN_KINDS: ObjectRef[] = [
  ...['Namespace', 'Secret', 'ConfigMap', 'Service', 'ServiceAccount'].map((kind) => ({ apiVersion: 'v1', kind })),
  ...['Deployment', 'DaemonSet'].map((kind) => ({ apiVersion: 'apps/v1', kind })),
  ...['Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding'].map((kind) => ({ apiVersion: 'rbac.authorization.k8s.io/v1', kind })),
];

function versions(): Promise<string[][]> {
  return Promise.all(names.map((n) => servers[n].objects.versions(WRITTEN_KINDS)));
}

function expectOk(result: CliResult): void {
  if (result.code !== 0) throw new Error(`exit ${result.code}: ${result.stderr}`);
}

/** Runs a command that must fail: one line on stderr, the exit code, and no write anywhere. */
async function expectRejected(args: string[], message: RegExp, code = 1): Promise<CliResult> {
  const before = await versions();
  const result = await cli(...args);
  expect(errorLines(result)).toEqual([expect.stringMatching(/^clustermesh: /)]);
  expect(errorLines(result)[0]).toMatch(message);
  expect(result.code).toBe(code);
  expect(await versions()).toEqual(before);
  return result;
}

describeRequiring('the CLI against official kube-apiservers', [cliBuiltRequirement(), kubeBinariesRequirement()], () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cm-cli-test-'));
    kubeconfig = join(dir, 'kubeconfig');
    const started = await startAll(...names.map(() => startKubeApiServer));
    servers = Object.fromEntries(names.map((n, i) => [n, started[i]!])) as Record<Name, KubeApiServer>;
    writeKubeconfig(kubeconfig, servers);
    for (const [i, n] of names.entries()) {
      await servers[n].objects.create({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: `${n}-control-plane` },
        status: { addresses: [{ type: 'InternalIP', address: `10.200.${i}.2` }] },
      });
    }
    for (const [name, id] of [['east', 1], ['west', 2], ['dupname', 3], ['dupid', 2]] as const) {
      const clusterName = name === 'dupname' ? 'east' : name;
      const result = await cli('install', '--context', name, '--cluster-name', clusterName, '--cluster-id', String(id));
      if (result.code !== 0) throw new Error(`install ${name} failed: ${result.stderr}`);
    }
  }, 180_000);

  afterAll(async () => {
    await Promise.all(Object.values(servers ?? {}).map((s) => s.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  /** The revisions of the chart's Helm release, from the Secrets helm keeps them in (owner=helm). */
  async function helmRevisions(server: KubeApiServer): Promise<string[]> {
    const secrets = await server.objects.versions([SECRET]);
    return secrets.flatMap((s) => /^Secret clustermesh-system\/sh\.helm\.release\.v1\.clustermesh\.(v\d+)@/.exec(s)?.slice(1) ?? []);
  }

  describe('install', () => {
    test('writes the PKI Secrets and installs the chart as a Helm release: its ConfigMap and every workload', async () => {
      const east = servers.east.objects;
      expect(await secretData(servers.east, 'clustermesh-ca')).toEqual({ 'ca.crt': expect.stringContaining('BEGIN CERTIFICATE'), 'ca.key': expect.stringContaining('PRIVATE KEY') });
      const config = (await east.get({ apiVersion: 'v1', kind: 'ConfigMap' }, NS, 'clustermesh-config')) as { data: Record<string, string> };
      expect(config.data).toMatchObject({ 'cluster-name': 'east', 'cluster-id': '1', 'etcd-node-port': '32379' });
      expect(await east.exists({ apiVersion: 'apps/v1', kind: 'Deployment' }, NS, 'clustermesh-apiserver')).toBe(true);
      expect(await east.exists({ apiVersion: 'apps/v1', kind: 'DaemonSet' }, NS, 'clustermesh-agent')).toBe(true);
      expect(await helmRevisions(servers.east)).toEqual(['v1']);
    });

    test('run again keeps the CA and upgrades the release', async () => {
      const ca = await secretData(servers.east, 'clustermesh-ca');
      const result = await cli('install', '--context', 'east', '--cluster-name', 'east', '--cluster-id', '1');
      expectOk(result);
      expect(await secretData(servers.east, 'clustermesh-ca')).toEqual(ca);
      expect(await helmRevisions(servers.east)).toEqual(['v1', 'v2']);
    });

    test('a value the chart refuses: one line with every problem helm found, the certificates and the release as they were', async () => {
      const before = await helmRevisions(servers.east);
      const args = ['install', '--context', 'east', '--cluster-name', 'east', '--cluster-id', '1', '--set', 'agent.statusPort=0', '--set', 'apiserver.replicas=x'];
      const result = await expectRejected(args, /^clustermesh: helm template \(checking the values before writing to context east\) failed: .*values don't meet/);
      expect(errorLines(result)[0]).toContain("at '/agent/statusPort': minimum: got 0, want 1");
      expect(errorLines(result)[0]).toContain("at '/apiserver/replicas': got string, want integer");
      expect(await helmRevisions(servers.east)).toEqual(before);
    });

    test('a value the chart refuses in a cluster without clustermesh: no namespace, Secret or ConfigMap created', async () => {
      const valuesFile = join(dir, 'refused-values.yaml');
      writeFileSync(valuesFile, 'apiserver:\n  service:\n    type: Headless\n');
      const args = ['install', '--context', 'fresh', '--cluster-name', 'fresh', '--cluster-id', '9', '-f', valuesFile];
      await expectRejected(args, /helm template \(checking the values before writing to context fresh\) failed: .*'\/apiserver\/service\/type': value must be one of 'NodePort', 'LoadBalancer', 'ClusterIP'$/);
      const fresh = servers.fresh.objects;
      expect(await fresh.exists({ apiVersion: 'v1', kind: 'Namespace' }, undefined, NS)).toBe(false);
      const objects = await fresh.versions([SECRET, { apiVersion: 'v1', kind: 'ConfigMap' }]);
      expect(objects.filter((o) => o.includes(`${NS}/`) || o.includes('clustermesh'))).toEqual([]);
    });

    test('--render-only prints the manifests without a cluster and writes nothing; a refused value is one line', async () => {
      const before = await versions();
      const result = await cli('install', '--cluster-name', 'fresh', '--cluster-id', '9', '--render-only');
      expectOk(result);
      const kinds = parseAllDocuments(result.stdout).map((d) => (d.toJS() as { kind: string }).kind);
      expect(kinds).toEqual(expect.arrayContaining(['ConfigMap', 'Deployment', 'DaemonSet', 'Service']));
      expect(await versions()).toEqual(before);
      await expectRejected(['install', '--cluster-name', 'fresh', '--cluster-id', '9', '--render-only', '--set', 'agent.statusPort=0'], /helm template failed: .*'\/agent\/statusPort': minimum/);
    });

    test.each([
      [['--cluster-id', '0'], /cluster ID "0" must be an integer from 1 to 255/],
      [['--cluster-id', '256'], /cluster ID "256" must be an integer from 1 to 255/],
      [['--cluster-id', 'x'], /cluster ID "x"/],
      [['--cluster-id', '4', '--cluster-name', 'Bad_Name'], /cluster name "Bad_Name" must be lowercase/],
      [['--cluster-id', '4', '--cluster-name', 'a'.repeat(33)], /longer than 32/],
    ])('refuses %j', async (flags, message) => {
      const args = ['install', '--context', 'fresh', '--cluster-name', 'fresh', ...flags];
      await expectRejected(args, message);
    });

    test('refuses an unknown context and a corrupt kubeconfig', async () => {
      await expectRejected(['install', '--context', 'nowhere', '--cluster-name', 'x', '--cluster-id', '9'], /context "nowhere" is not in .*known: east, west/);
      const corrupt = join(dir, 'corrupt');
      writeFileSync(corrupt, 'apiVersion: v1\nclusters: [ {name: \n');
      const result = await runCli(['--kubeconfig', corrupt, 'status', '--context', 'east']);
      expect(errorLines(result)).toEqual([expect.stringMatching(/^clustermesh: kubeconfig .* is corrupt/)]);
      expect(result.code).toBe(1);
    });

    test('refuses to rename an installed cluster', async () => {
      await expectRejected(['install', '--context', 'west', '--cluster-name', 'north', '--cluster-id', '2'], /already installed as cluster west \(ID 2\)/);
    });

    test('refuses an expired, a foreign-issued or a keyless CA with --ca-from', async () => {
      const expired = await createCA('old', { notBefore: new Date(Date.now() - 10 * 86400e3), notAfter: new Date(Date.now() - 86400e3) });
      const root = await createCA('root');
      const leaf = await issueClientCert(root, { commonName: 'not-a-ca' });
      const files = { expired: join(dir, 'expired.pem'), leaf: join(dir, 'leaf.pem'), keyless: join(dir, 'keyless.pem') };
      writeFileSync(files.expired, expired.certPem + expired.keyPem);
      writeFileSync(files.leaf, leaf.certPem + leaf.keyPem);
      writeFileSync(files.keyless, root.certPem);
      const install = (from: string) => ['install', '--context', 'fresh', '--cluster-name', 'fresh', '--cluster-id', '9', '--ca-from', from];
      await expectRejected(install(files.expired), /CA certificate "old" expired on/);
      await expectRejected(install(files.leaf), /"not-a-ca" is not a CA certificate/);
      await expectRejected(install(files.keyless), /needs a PEM certificate and its PEM private key/);
      await expectRejected(install(join(dir, 'missing.pem')), /no such file or kubeconfig context/);
    });

    test('accepts a good CA with --ca-from and uses it', async () => {
      const ca = await createCA('shared root');
      const file = join(dir, 'ca.pem');
      writeFileSync(file, ca.certPem + ca.keyPem);
      const result = await cli('install', '--context', 'fresh', '--cluster-name', 'fresh', '--cluster-id', '9', '--ca-from', file);
      expectOk(result);
      expect((await secretData(servers.fresh, 'clustermesh-ca'))?.['ca.crt']?.trim()).toBe(ca.certPem.trim());
    });
  });

  describe('connect', () => {
    test.each([
      [['--context', 'east', '--destination-context', 'east'], /cannot be connected to itself/],
      [['--context', 'east', '--destination-context', 'dupname'], /both named "east"/],
      [['--context', 'west', '--destination-context', 'dupid'], /both have cluster ID 2/],
      [['--context', 'east', '--destination-context', 'nowhere'], /context "nowhere" is not in/],
    ])('refuses %j and writes nothing', async (flags, message) => {
      await expectRejected(['connect', ...flags], message);
    });

    test('refuses a cluster whose apiserver certificate is not from its CA', async () => {
      const foreign = await createCA('foreign');
      const original = await servers.dupid.objects.get(SECRET, NS, 'clustermesh-ca');
      await servers.dupid.objects.update({ ...original, data: { 'ca.crt': Buffer.from(foreign.certPem).toString('base64'), 'ca.key': Buffer.from(foreign.keyPem).toString('base64') } });
      try {
        await expectRejected(['connect', '--context', 'east', '--destination-context', 'dupid'], /was not issued by CA "foreign" \(foreign CA\)/);
      } finally {
        await servers.dupid.objects.update(original);
      }
    });

    test('links both ways, is idempotent, and disconnect removes both sides', async () => {
      const first = await cli('connect', '--context', 'east', '--destination-context', 'west', '-o', 'json');
      expectOk(first);
      expect(JSON.parse(first.stdout)).toEqual({ connected: [{ name: 'east', id: 1 }, { name: 'west', id: 2 }] });
      const east = (await secretData(servers.east, 'clustermesh-remotes'))!;
      const west = (await secretData(servers.west, 'clustermesh-remotes'))!;
      expect(Object.keys(east).sort()).toEqual(['west', 'west.etcd-client-ca.crt', 'west.etcd-client.crt', 'west.etcd-client.key']);
      expect(Object.keys(west).sort()).toEqual(['east', 'east.etcd-client-ca.crt', 'east.etcd-client.crt', 'east.etcd-client.key']);
      expect(parse(east.west)).toEqual({
        endpoints: ['https://10.200.1.2:32380'], // west's node InternalIP and NodePort 32378 + 2
        'trusted-ca-file': '/var/lib/clustermesh/remotes/west.etcd-client-ca.crt',
        'cert-file': '/var/lib/clustermesh/remotes/west.etcd-client.crt',
        'key-file': '/var/lib/clustermesh/remotes/west.etcd-client.key',
      });
      // east's agents present remote-east, signed by west's CA
      const westCa = (await secretData(servers.west, 'clustermesh-ca'))!['ca.crt'];
      expect(east['west.etcd-client-ca.crt']).toBe(westCa);
      const { X509Certificate } = await import('node:crypto');
      const cert = new X509Certificate(east['west.etcd-client.crt']);
      expect(cert.subject).toContain('CN=remote-east');
      expect(cert.checkIssued(new X509Certificate(east['west.etcd-client-ca.crt']))).toBe(true);
      // cached mode (the chart's default): east's agents read west from east's own etcd, as local-reader
      const eastCache = (await secretData(servers.east, 'clustermesh-cache-remotes'))!;
      expect(parse(eastCache.west)).toMatchObject({ endpoints: [`https://clustermesh-apiserver.${NS}.svc:2379`] });
      const eastCaPem = (await secretData(servers.east, 'clustermesh-ca'))!['ca.crt'];
      const eastCa = new X509Certificate(eastCaPem);
      expect(eastCache['west.etcd-client-ca.crt']).toBe(eastCaPem);
      const reader = new X509Certificate(eastCache['west.etcd-client.crt']);
      expect(reader.subject).toContain('CN=local-reader');
      expect(reader.checkIssued(eastCa)).toBe(true);

      // connecting again changes nothing: the same certificates, and no object rewritten
      const before = await versions();
      expectOk(await cli('connect', '--context', 'east', '--destination-context', 'west'));
      expect(await secretData(servers.east, 'clustermesh-remotes')).toEqual(east);
      expect(await secretData(servers.west, 'clustermesh-remotes')).toEqual(west);
      expect(await secretData(servers.east, 'clustermesh-cache-remotes')).toEqual(eastCache);
      expect(await versions()).toEqual(before);

      const gone = await cli('disconnect', '--context', 'west', '--destination-context', 'east');
      expectOk(gone);
      expect(await secretData(servers.east, 'clustermesh-remotes')).toEqual({});
      expect(await secretData(servers.west, 'clustermesh-remotes')).toEqual({});
      expect(await secretData(servers.east, 'clustermesh-cache-remotes')).toEqual({});
      expect(await secretData(servers.west, 'clustermesh-cache-remotes')).toEqual({});
    });

    test('refuses a cluster that is not installed', async () => {
      const bare = await startKubeApiServer();
      const path = join(dir, 'bare-kubeconfig');
      writeKubeconfig(path, { east: servers.east, bare });
      try {
        const result = await runCli(['--kubeconfig', path, 'connect', '--context', 'east', '--destination-context', 'bare']);
        expect(errorLines(result)).toEqual([expect.stringMatching(/context bare: clustermesh is not installed/)]);
        expect(result.code).toBe(1);
        expect(await secretData(servers.east, 'clustermesh-remotes')).toEqual({});
      } finally {
        await bare.close();
      }
    });
  });

  describe('service', () => {
    beforeAll(async () => {
      await servers.east.objects.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: 'default' }, spec: { ports: [{ port: 80 }] } });
    });

    const annotations = async () => ((await servers.east.objects.get(SERVICE, 'default', 'echo')).metadata?.annotations ?? {}) as Record<string, string>;

    test('global with options, then local', async () => {
      const result = await cli('service', 'global', 'default/echo', '--context', 'east', '--affinity', 'local', '--min-healthy-local', '2', '--shared=false');
      expectOk(result);
      expect(await annotations()).toEqual({ 'clustermesh.io/global': 'true', 'clustermesh.io/affinity': 'local', 'clustermesh.io/min-healthy-local': '2', 'clustermesh.io/shared': 'false' });
      expectOk(await cli('service', 'local', 'default/echo', '--context', 'east'));
      expect(await annotations()).toEqual({ 'clustermesh.io/global': 'false' });
    });

    test.each([
      [['global', 'default/echo', '--affinity', 'nearest'], /--affinity nearest: use local, remote or none/],
      [['global', 'default/echo', '--min-healthy-local', '2'], /applies only to affinity "local"/],
      [['global', 'default/echo', '--shared', 'maybe'], /--shared maybe: use true or false/],
      [['global', 'echo'], /is not NAMESPACE\/NAME/],
      [['global', 'default/missing'], /Service default\/missing does not exist/],
    ])('refuses %j', async (args, message) => {
      await expectRejected(['service', ...args, '--context', 'east'], message);
    });
  });

  describe('status', () => {
    test('reports what is missing and exits 3 when --wait times out', async () => {
      const plain = await cli('status', '--context', 'east', '-o', 'json');
      expectOk(plain);
      const report = JSON.parse(plain.stdout);
      expect(report).toMatchObject({ cluster: { name: 'east', id: 1 }, ready: false, agents: { total: 0 } });
      expect(report.errors.map((e: { message: string }) => e.message)).toContain('no clustermesh agents found');
      const waited = await cli('status', '--context', 'east', '--wait', '--wait-timeout', '1s');
      expect(waited.code).toBe(3);
      expect(waited.stdout).toMatch(/NOT READY/);
    });

    test('usage errors exit 2', async () => {
      expect((await cli('status', '--wait-timeout', 'soon')).code).toBe(2);
      expect((await cli('frobnicate')).code).toBe(2);
    });
  });
});
