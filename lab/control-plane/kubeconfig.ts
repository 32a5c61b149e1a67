/** A kubeconfig (YAML) with one cluster, one client-certificate user and one context. Pure. */
import { stringify } from 'yaml';
import type { CertifiedKey } from '../../lib/pki.js';

export interface ClientKubeconfigInput {
  url: string;
  contextName: string;
  caCert: string;
  client: CertifiedKey;
}

export function renderClientKubeconfig({ url, contextName, caCert, client }: ClientKubeconfigInput): string {
  const b64 = (text: string) => Buffer.from(text).toString('base64');
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: contextName, cluster: { server: url, 'certificate-authority-data': b64(caCert) } }],
    users: [{ name: contextName, user: { 'client-certificate-data': b64(client.certPem), 'client-key-data': b64(client.keyPem) } }],
    contexts: [{ name: contextName, context: { cluster: contextName, user: contextName } }],
    'current-context': contextName,
    preferences: {},
  });
}
