/** A kubeconfig (YAML) with one cluster, user and context for this server. Pure. */
import { stringify } from 'yaml';

export interface KubeconfigInput {
  url: string;
  contextName: string;
  token?: string;
  /** PEM of the CA that signed the server certificate (HTTPS only). */
  caCert?: string;
}

export function renderKubeconfig({ url, contextName, token, caCert }: KubeconfigInput): string {
  const cluster: Record<string, unknown> = { server: url };
  if (caCert) cluster['certificate-authority-data'] = Buffer.from(caCert).toString('base64');
  // client-node refuses a plain-HTTP server unless this is set; kubectl ignores it for HTTP.
  else cluster['insecure-skip-tls-verify'] = true;
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: contextName, cluster }],
    users: [{ name: contextName, user: token ? { token } : {} }],
    contexts: [{ name: contextName, context: { cluster: contextName, user: contextName } }],
    'current-context': contextName,
    preferences: {},
  });
}
