/**
 * JSON requests to the API server with the kubelet's client certificate, for what the typed
 * client makes awkward: subresources (pods/status, nodes/status, serviceaccounts/token), merge
 * patches, and deletes with preconditions.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { apiRequest, apiUrl, errorBody } from '../../lib/k8s/rest.js';

export class ApiError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export class KubeRest {
  private readonly server: URL;

  constructor(private readonly kc: KubeConfig) {
    this.server = apiUrl(kc, '');
  }

  get apiServer(): { host: string; port: number } {
    return { host: this.server.hostname.replace(/^\[|\]$/g, ''), port: Number(this.server.port || 443) };
  }

  async call<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const answer = await apiRequest(this.kc, {
      method,
      path,
      headers: {
        accept: 'application/json',
        // explicit: Node sends a DELETE's body unframed otherwise, and the API server never reads it
        ...(payload ? { 'content-type': contentType, 'content-length': payload.length } : {}),
      },
      body: payload,
      timeoutMs: 30_000,
    });
    if (answer.status >= 200 && answer.status < 300) return (answer.body ? JSON.parse(answer.body) : undefined) as T;
    throw new ApiError(answer.status, `${method} ${path}: ${answer.status} ${errorBody(answer.body).message ?? answer.body}`);
  }
}

export function isStatus(err: unknown, code: number): boolean {
  return err instanceof ApiError && err.code === code;
}
