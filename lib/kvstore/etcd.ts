/**
 * etcd client factory (TLS with client certificates) and a classifier that turns the many
 * shapes of etcd/gRPC/TLS failures into one sentence an operator can act on.
 */
import { readFileSync } from 'node:fs';
import {
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  GRPCUnauthenticatedError,
  type IOptions,
} from 'etcd3';

export interface EtcdClientConfig {
  /** `https://host:port` URLs. */
  endpoints: string[];
  /** PEM of the CA that signed the server certificate. */
  caPem?: string;
  /** PEM client certificate; its CN is the etcd username under --client-cert-auth. */
  certPem?: string;
  keyPem?: string;
  /** How long connectEtcd's first contact may take (default 5 s). */
  dialTimeoutMs?: number;
  /** Deadline of each unary call (default 10 s); streams (watch) have none. */
  requestTimeoutMs?: number;
}

export interface EtcdClientFiles {
  endpoints: string[];
  caFile: string;
  certFile: string;
  keyFile: string;
  dialTimeoutMs?: number;
  requestTimeoutMs?: number;
}

export type EtcdFailureKind = 'unreachable' | 'tls' | 'permission-denied' | 'auth' | 'timeout' | 'other';

export interface EtcdFailure {
  kind: EtcdFailureKind;
  /** One sentence: what is wrong and what to check. */
  message: string;
}

/** A failure already classified; `message` is the operator sentence. */
export class EtcdConnectionError extends Error {
  constructor(
    readonly kind: EtcdFailureKind,
    message: string,
    readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'EtcdConnectionError';
  }
}

type HostPolicyFactory = NonNullable<NonNullable<IOptions['faultHandling']>['host']>;

/**
 * etcd3's default per-host circuit breaker stays open for 5 s after 3 failures, which delays
 * recovery after an etcd restart by up to 5 s. The stores retry with their own backoff, so each
 * call goes straight to the host. etcd3 uses only `execute`, and expects a promise from it even
 * when `fn` throws synchronously (hence async).
 */
const passThroughHostPolicy = (() => ({
  execute: async <T>(fn: (ctx: { signal: AbortSignal }) => T | Promise<T>): Promise<T> =>
    fn({ signal: new AbortController().signal }),
})) as unknown as HostPolicyFactory;

const DEFAULT_DIAL_TIMEOUT_MS = 5_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

const MAX_REPLY_BYTES = 256 * 1024 * 1024;

/** A ping after this much silence on a connection; no answer within the timeout ends it. */
export const KEEPALIVE_TIME_MS = 5_000;
export const KEEPALIVE_TIMEOUT_MS = 3_000;

export function createEtcdClient(config: EtcdClientConfig): Etcd3 {
  if (config.endpoints.length === 0)
    throw new Error('etcd: no endpoints given; pass at least one https:// URL');
  const requestTimeoutMs = config.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  return new Etcd3({
    hosts: config.endpoints,
    credentials: config.caPem
      ? {
          rootCertificate: Buffer.from(config.caPem),
          ...(config.certPem ? { certChain: Buffer.from(config.certPem) } : {}),
          ...(config.keyPem ? { privateKey: Buffer.from(config.keyPem) } : {}),
        }
      : undefined,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + requestTimeoutMs }),
    grpcOptions: {
      'grpc.max_reconnect_backoff_ms': 2_000,
      'grpc.initial_reconnect_backoff_ms': 100,
      // Listings come in pages (lib/kvstore/listing.ts), but a page of 1,000 keys may still pass
      // gRPC's 4 MiB default reply size with large records, and so may a watch response.
      'grpc.max_receive_message_length': MAX_REPLY_BYTES,
      // Without keepalives a silent partition (a pulled link: no reset) is never noticed.
      'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
      'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
      'grpc.keepalive_permit_without_calls': 1,
    },
    faultHandling: { host: passThroughHostPolicy },
  });
}

/** Reads the CA, certificate and key files; a missing or unreadable file is one clear error. */
export function loadEtcdClientConfig(files: EtcdClientFiles): EtcdClientConfig {
  const read = (path: string, what: string): string => {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new Error(
        `etcd: cannot read the ${what} file ${path} (${(err as NodeJS.ErrnoException).code ?? err})`,
      );
    }
  };
  return {
    endpoints: files.endpoints,
    caPem: read(files.caFile, 'CA'),
    certPem: read(files.certFile, 'client certificate'),
    keyPem: read(files.keyFile, 'client key'),
    dialTimeoutMs: files.dialTimeoutMs,
    requestTimeoutMs: files.requestTimeoutMs,
  };
}

/**
 * Creates a client and proves it works with one read of `probeKey` within the dial timeout.
 * The probe is a read because a read-only user may read nothing but its own prefixes: pass one
 * of them. Throws an EtcdConnectionError saying what is wrong.
 */
export async function connectEtcd(config: EtcdClientConfig, probeKey = 'cilium/.heartbeat'): Promise<Etcd3> {
  const client = createEtcdClient(config);
  const deadline = Date.now() + (config.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS);
  try {
    await client.get(probeKey).options({ deadline }).exec();
    return client;
  } catch (err) {
    client.close();
    const failure = classifyEtcdError(err, config.endpoints);
    throw new EtcdConnectionError(failure.kind, failure.message, err);
  }
}

/** Pure: maps an error from etcd3/gRPC/TLS to a kind and one sentence. */
export function classifyEtcdError(err: unknown, endpoints: readonly string[]): EtcdFailure {
  const where = endpoints.join(', ');
  const text = errorText(err);
  if (err instanceof EtcdPermissionDeniedError || /permission denied/i.test(text)) {
    return {
      kind: 'permission-denied',
      message: `etcd at ${where} refused the operation: permission denied for the user named by the client certificate's CN (check that the user exists and its role grants this key)`,
    };
  }
  if (
    err instanceof EtcdAuthenticationFailedError ||
    err instanceof GRPCUnauthenticatedError ||
    /authentication failed|invalid auth token|user name not found|auth: revision/i.test(text)
  ) {
    return {
      kind: 'auth',
      message: `etcd at ${where} rejected the client's identity: no etcd user matches the client certificate's CN (create the user or issue a certificate for an existing one)`,
    };
  }
  if (/alert bad certificate|alert unknown ca|certificate required|alert number 4[2568]\b/i.test(text)) {
    return {
      kind: 'tls',
      message: `etcd at ${where} refused the client certificate: it is missing, expired or not signed by the CA etcd trusts (issue one from that CA)`,
    };
  }
  if (
    /unable to verify|self[- ]signed|unable to get local issuer|certificate has expired|altname|does not match certificate|wrong version number|handshake|ssl|tls/i.test(
      text,
    )
  ) {
    return {
      kind: 'tls',
      message: `TLS with etcd at ${where} failed: its server certificate is not trusted by the configured CA or does not name this address (check the CA file and endpoint) — ${firstLine(text)}`,
    };
  }
  if (/deadline exceeded|timed out|timeout/i.test(text)) {
    return {
      kind: 'timeout',
      message: `etcd at ${where} did not answer in time (is it overloaded, or is the address right?)`,
    };
  }
  if (
    /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|No connection established|UNAVAILABLE|connect|unavailable/i.test(
      text,
    )
  ) {
    return {
      kind: 'unreachable',
      message: `etcd at ${where} is unreachable (is it running, and are the endpoints right?) — ${firstLine(text)}`,
    };
  }
  return { kind: 'other', message: `etcd at ${where} failed: ${firstLine(text)}` };
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const details = (err as Error & { details?: string }).details;
    return [err.name, err.message, details].filter(Boolean).join(': ');
  }
  return String(err);
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? text;
}
