/**
 * The certificates and keys of one cluster's control plane, kubeadm style: one CA signs the API
 * server's serving certificate and every client certificate; Kubernetes takes the user from the
 * CN and the groups from O (system:masters for the admin, system:nodes for kubelets).
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CertifiedKey, createCA, createPrivateKeyPem, issueClientCert, issueServerCert } from '../../lib/pki.js';
import type { ControlPlaneFiles } from './args.js';
import { renderClientKubeconfig } from './kubeconfig.js';

export interface ControlPlanePkiInput {
  dir: string;
  clusterName: string;
  /** the URL every component and user reaches the API server at */
  serverUrl: string;
  /** IP SANs: the advertise address, loopback, the first address of the service range */
  serverIPs: string[];
}

export interface ControlPlanePki {
  files: ControlPlaneFiles;
  ca: CertifiedKey;
  adminKubeconfig: string;
  /** a kubeconfig for the kubelet of `node` (CN system:node:<node>, O system:nodes) */
  kubeletKubeconfig(node: string): Promise<string>;
}

export async function createControlPlanePki(i: ControlPlanePkiInput): Promise<ControlPlanePki> {
  mkdirSync(i.dir, { recursive: true, mode: 0o700 });
  const ca = await createCA(`${i.clusterName}-kubernetes-ca`);
  const serving = await issueServerCert(ca, {
    commonName: 'kube-apiserver',
    dnsNames: ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local', 'localhost'],
    ipAddresses: i.serverIPs,
  });
  const saKey = await createPrivateKeyPem();
  const write = (name: string, text: string, mode = 0o600) => {
    const path = join(i.dir, name);
    writeFileSync(path, text, { mode });
    return path;
  };
  const kubeconfig = async (file: string, commonName: string, organizations: string[] = []) => {
    const client = await issueClientCert(ca, { commonName, organizations });
    return write(file, renderClientKubeconfig({ url: i.serverUrl, contextName: i.clusterName, caCert: ca.certPem, client }));
  };
  const files: ControlPlaneFiles = {
    dir: i.dir,
    caCert: write('ca.crt', ca.certPem, 0o644),
    caKey: write('ca.key', ca.keyPem),
    apiserverCert: write('apiserver.crt', serving.certPem, 0o644),
    apiserverKey: write('apiserver.key', serving.keyPem),
    saKey: write('sa.key', saKey),
    saPub: write('sa.pub', createPublicKey(createPrivateKey(saKey)).export({ type: 'spki', format: 'pem' }).toString(), 0o644),
    controllerManagerKubeconfig: await kubeconfig('controller-manager.kubeconfig', 'system:kube-controller-manager'),
    schedulerKubeconfig: await kubeconfig('scheduler.kubeconfig', 'system:kube-scheduler'),
  };
  return {
    files,
    ca,
    adminKubeconfig: await kubeconfig('admin.kubeconfig', 'kubernetes-admin', ['system:masters']),
    kubeletKubeconfig: (node) => kubeconfig(`kubelet-${node}.kubeconfig`, `system:node:${node}`, ['system:nodes']),
  };
}
