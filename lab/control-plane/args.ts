/**
 * Command lines of the official control-plane programs for one cluster. Pure: the lab
 * (lab/control-plane/index.ts, inside the control-plane node's namespace) and the tests' harness
 * (test/harness/kube-apiserver.ts, on loopback) both run exactly these.
 */
export interface ControlPlaneFiles {
  dir: string;
  caCert: string;
  caKey: string;
  apiserverCert: string;
  apiserverKey: string;
  saKey: string;
  saPub: string;
  controllerManagerKubeconfig: string;
  schedulerKubeconfig: string;
}

export interface EtcdArgsInput {
  name: string;
  dataDir: string;
  /** loopback client port of the cluster's Kubernetes etcd (plain HTTP: it never leaves loopback) */
  clientPort: number;
  peerPort: number;
}

export function etcdArgs(i: EtcdArgsInput): string[] {
  const client = `http://127.0.0.1:${i.clientPort}`;
  const peer = `http://127.0.0.1:${i.peerPort}`;
  return [
    `--name=${i.name}`,
    `--data-dir=${i.dataDir}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=${i.name}=${peer}`,
    // test and lab clusters only: their state is thrown away with them
    '--unsafe-no-fsync',
    '--log-level=warn',
  ];
}

export interface ApiServerArgsInput {
  files: ControlPlaneFiles;
  advertiseAddress: string;
  bindAddress: string;
  securePort: number;
  etcdClientPort: number;
  /** primary family first, e.g. 10.111.0.0/16,fd99:111::/108 */
  serviceCIDRs: string[];
}

export const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';

export function apiServerArgs(i: ApiServerArgsInput): string[] {
  const f = i.files;
  return [
    `--advertise-address=${i.advertiseAddress}`,
    `--bind-address=${i.bindAddress}`,
    `--secure-port=${i.securePort}`,
    `--etcd-servers=http://127.0.0.1:${i.etcdClientPort}`,
    `--tls-cert-file=${f.apiserverCert}`,
    `--tls-private-key-file=${f.apiserverKey}`,
    `--client-ca-file=${f.caCert}`,
    `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
    `--service-account-key-file=${f.saPub}`,
    `--service-account-signing-key-file=${f.saKey}`,
    '--authorization-mode=Node,RBAC',
    '--enable-admission-plugins=NodeRestriction',
    `--service-cluster-ip-range=${i.serviceCIDRs.join(',')}`,
    '--allow-privileged=true',
    '--kubelet-preferred-address-types=InternalIP',
    // nothing of the lab dials kubelets (no logs/exec), and a test cluster has no cloud
    '--profiling=false',
    '--v=1',
  ];
}

export interface ControllerManagerArgsInput {
  files: ControlPlaneFiles;
  clusterName: string;
  serviceCIDRs: string[];
}

export function controllerManagerArgs(i: ControllerManagerArgsInput): string[] {
  const f = i.files;
  const kubeconfig = f.controllerManagerKubeconfig;
  return [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    '--bind-address=127.0.0.1',
    '--use-service-account-credentials=true',
    `--service-account-private-key-file=${f.saKey}`,
    `--root-ca-file=${f.caCert}`,
    `--cluster-signing-cert-file=${f.caCert}`,
    `--cluster-signing-key-file=${f.caKey}`,
    `--cluster-name=${i.clusterName}`,
    // pod CIDRs come from the lab's address plan (lab/topology/plan.ts), written on the Node by the
    // lab, as kind's CNI expects them: no allocation here
    '--allocate-node-cidrs=false',
    `--service-cluster-ip-range=${i.serviceCIDRs.join(',')}`,
    '--leader-elect=false',
    '--v=1',
  ];
}

export function schedulerArgs(files: ControlPlaneFiles): string[] {
  const kubeconfig = files.schedulerKubeconfig;
  return [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    '--bind-address=127.0.0.1',
    '--leader-elect=false',
    '--v=1',
  ];
}
