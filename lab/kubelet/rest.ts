/**
 * JSON requests to the API server with the kubelet's client certificate, for what the typed
 * client makes awkward: subresources (pods/status, nodes/status, serviceaccounts/token), merge
 * patches, and deletes with preconditions.
 */
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

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
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
  }

  get apiServer(): { host: string; port: number } {
    return { host: this.server.hostname.replace(/^\[|\]$/g, ''), port: Number(this.server.port || 443) };
  }

  async call<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const options: RequestOptions = {
      method,
      hostname: this.server.hostname.replace(/^\[|\]$/g, ''),
      port: this.server.port || 443,
      path,
      headers: {
        accept: 'application/json',
        // explicit: Node sends a DELETE's body unframed otherwise, and the API server never reads it
        ...(payload ? { 'content-type': contentType, 'content-length': payload.length } : {}),
      },
      timeout: 30_000,
    };
    await this.kc.applyToHTTPSOptions(options);
    return new Promise<T>((resolve, reject) => {
      const req = httpsRequest(options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            resolve((text ? JSON.parse(text) : undefined) as T);
            return;
          }
          let message = text;
          try {
            message = (JSON.parse(text) as { message?: string }).message ?? text;
          } catch {
            // not a Status object
          }
          reject(new ApiError(status, `${method} ${path}: ${status} ${message}`));
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.on('error', reject);
      req.end(payload);
    });
  }
}

export function isStatus(err: unknown, code: number): boolean {
  return err instanceof ApiError && err.code === code;
}
