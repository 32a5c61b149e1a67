/**
 * One request to the API server with a kubeconfig's credentials, the answer as text: what the
 * typed client does not serve well — lists as plain JSON (lib/k8s/informer.ts `listJson`) and the
 * lab kubelet's subresources, merge patches and preconditioned deletes (lab/kubelet/rest.ts).
 */
import { request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

export interface ApiAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface ApiRequest {
  method: string;
  /** the API path, query included */
  path: string;
  headers?: OutgoingHttpHeaders;
  body?: Buffer;
  /** the request is destroyed after this long without activity */
  timeoutMs?: number;
}

/** The URL of `path` on the kubeconfig's current cluster. */
export function apiUrl(kubeConfig: KubeConfig, path: string): URL {
  const server = kubeConfig.getCurrentCluster()?.server;
  if (!server) throw new Error('the kubeconfig has no current cluster');
  return new URL(server + path);
}

export async function apiRequest(kubeConfig: KubeConfig, request: ApiRequest): Promise<ApiAnswer> {
  const url = apiUrl(kubeConfig, request.path);
  const options: RequestOptions = { method: request.method, timeout: request.timeoutMs };
  await kubeConfig.applyToHTTPSOptions(options);
  options.headers = { ...options.headers, ...request.headers };
  const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, options, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`${request.method} ${request.path}: timed out`)));
    req.on('error', reject);
    req.end(request.body);
  });
}

/** An error answer's body: the Status object the API server sent, or the text when it is none. */
export function errorBody(text: string): { body: unknown; message: string | undefined } {
  try {
    const body = JSON.parse(text) as { message?: unknown } | null;
    return { body, message: typeof body?.message === 'string' ? body.message : undefined };
  } catch {
    return { body: text, message: undefined };
  }
}
