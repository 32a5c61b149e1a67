/**
 * The HTTP side: routes a request to discovery, OpenAPI, or a resource verb on the store, and
 * answers in the real server's shapes (lists, Status errors, watch streams).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse } from 'yaml';
import { VERSION_INFO, discoveryDocument } from './discovery.js';
import { openApiDocument } from './openapi.js';
import { PATCH_CONTENT_TYPES, applyPatch } from './patch.js';
import { PROTOBUF_MEDIA_TYPE, decodeProtobufObject } from './protobuf.js';
import { type ResourceType, resourceTypeAt } from './resources.js';
import {
  ApiError,
  badRequest,
  methodNotAllowed,
  pathNotFound,
  unauthorized,
  unsupportedMediaType,
} from './status.js';
import type { DeleteOptions, KubeObject, Store } from './store.js';
import { serveWatch } from './watch.js';

export interface HandlerOptions {
  store: Store;
  /** host:port as clients reach it (for `/api`). */
  serverAddress: () => string;
  token?: string;
  bookmarkIntervalMs: number;
  defaultWatchTimeoutSeconds: number;
  /** Called with the stop function of every watch that opens; returns the unregister function. */
  trackWatch: (stop: () => void) => () => void;
}

export interface ResourceRoute {
  type: ResourceType;
  namespace?: string;
  name?: string;
  subresource?: string;
}

const MAX_BODY_BYTES = 3 * 1024 * 1024;
const UNAUTHENTICATED_PATHS = new Set(['/version', '/healthz', '/livez', '/readyz']);

function groupVersionAndRest(
  segments: string[],
): { group: string; version: string; rest: string[] } | undefined {
  if (segments[0] === 'api' && segments.length >= 3)
    return { group: '', version: segments[1], rest: segments.slice(2) };
  if (segments[0] === 'apis' && segments.length >= 4)
    return { group: segments[1], version: segments[2], rest: segments.slice(3) };
  return undefined;
}

/** `…/namespaces/NS/PLURAL[/NAME[/SUB]]` or `…/PLURAL[/NAME[/SUB]]`; undefined when no such resource. */
export function resourceRoute(pathname: string): ResourceRoute | undefined {
  const parsed = groupVersionAndRest(
    pathname
      .split('/')
      .filter((s) => s !== '')
      .map(decodeURIComponent),
  );
  if (!parsed) return undefined;
  const { group, version, rest } = parsed;
  const inNamespace =
    rest[0] === 'namespaces' && rest.length >= 3 ? resourceTypeAt(group, version, rest[2]) : undefined;
  if (inNamespace?.namespaced && rest.length <= 5) {
    return { type: inNamespace, namespace: rest[1], name: rest[3], subresource: rest[4] };
  }
  const type = resourceTypeAt(group, version, rest[0]);
  if (!type || rest.length > 3 || (type.namespaced && rest.length > 1)) return undefined;
  return { type, name: rest[1], subresource: rest[2] };
}

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, error: unknown): void {
  const apiError =
    error instanceof ApiError
      ? error
      : new ApiError(500, 'InternalError', `Internal error occurred: ${String(error)}`);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, apiError.code, apiError.toStatus());
}

async function readRaw(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES)
      throw new ApiError(413, 'RequestEntityTooLarge', 'the request body is larger than 3 MiB');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function parseJson(body: Buffer): unknown {
  const text = body.toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw badRequest(`the request body is not valid JSON: ${(error as Error).message}`);
  }
}

function parseYaml(body: Buffer): unknown {
  try {
    return parse(body.toString('utf8'));
  } catch (error) {
    throw badRequest(`the request body is not valid YAML: ${(error as Error).message}`);
  }
}

/** DELETE bodies: JSON, or protobuf from typed clients (Helm deleting its release Secrets). */
async function readDeleteOptions(req: IncomingMessage): Promise<DeleteOptions | undefined> {
  const raw = await readRaw(req);
  if (mediaType(req) === PROTOBUF_MEDIA_TYPE) return decodeProtobufObject(raw) as DeleteOptions;
  return parseJson(raw) as DeleteOptions | undefined;
}

function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
}

async function readObject(req: IncomingMessage): Promise<KubeObject> {
  const type = mediaType(req);
  const raw = await readRaw(req);
  if (type === PROTOBUF_MEDIA_TYPE) return decodeProtobufObject(raw);
  if (type !== '' && type !== 'application/json')
    throw unsupportedMediaType(type, ['application/json', PROTOBUF_MEDIA_TYPE]);
  const body = parseJson(raw);
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw badRequest('the request body must be a JSON object');
  return body as KubeObject;
}

/** The body must describe the object the URL names (kind, apiVersion, namespace, name). */
function bindToRoute(route: ResourceRoute, object: KubeObject): KubeObject {
  const { type } = route;
  if (
    (object.kind && object.kind !== type.kind) ||
    (object.apiVersion && object.apiVersion !== type.apiVersion)
  ) {
    throw badRequest(
      `the body is a ${object.apiVersion}/${object.kind}, the URL is for ${type.apiVersion}/${type.kind}`,
    );
  }
  const metadata = { ...(object.metadata ?? {}) };
  if (route.namespace !== undefined) {
    if (metadata.namespace && metadata.namespace !== route.namespace) {
      throw badRequest(
        'the namespace of the provided object does not match the namespace sent on the request',
      );
    }
    metadata.namespace = route.namespace;
  }
  if (route.name !== undefined) {
    if (metadata.name && metadata.name !== route.name)
      throw badRequest('the name of the object does not match the name on the URL');
    metadata.name = route.name;
  }
  return { ...object, apiVersion: type.apiVersion, kind: type.kind, metadata };
}

function statusScope(route: ResourceRoute): { subresource?: 'status' } {
  if (route.subresource === undefined) return {};
  if (route.subresource === 'status' && route.type.hasStatus) return { subresource: 'status' };
  throw pathNotFound();
}

function isTrue(value: string | null): boolean {
  return value === 'true' || value === '1';
}

function listOptions(route: ResourceRoute, query: URLSearchParams) {
  const byName = route.name === undefined ? [] : [`metadata.name=${route.name}`];
  const fieldSelector = [query.get('fieldSelector') ?? '', ...byName].filter((s) => s !== '').join(',');
  return {
    namespace: route.namespace,
    labelSelector: query.get('labelSelector') ?? undefined,
    fieldSelector,
  };
}

export class Handler {
  constructor(private readonly options: HandlerOptions) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      await this.dispatch(req, res);
    } catch (error) {
      sendError(res, error);
    }
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://server');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (
      this.options.token &&
      !UNAUTHENTICATED_PATHS.has(path) &&
      req.headers.authorization !== `Bearer ${this.options.token}`
    ) {
      throw unauthorized();
    }
    const route = resourceRoute(path);
    if (route) return this.serveResource(route, req, res, url.searchParams);
    if (req.method !== 'GET') throw methodNotAllowed(req.method ?? '');
    this.serveStatic(path, req, res);
  }

  private serveStatic(path: string, req: IncomingMessage, res: ServerResponse): void {
    if (path === '/version') return sendJson(res, 200, VERSION_INFO);
    if (path === '/healthz' || path === '/livez' || path === '/readyz') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('ok');
      return;
    }
    const openApi = openApiDocument(path, req.headers.accept ?? '');
    if (openApi) {
      res.writeHead(200, { 'Content-Type': openApi.contentType });
      res.end(openApi.body);
      return;
    }
    const document = discoveryDocument(path, this.options.serverAddress());
    if (!document) throw pathNotFound();
    sendJson(res, 200, document);
  }

  private async serveResource(
    route: ResourceRoute,
    req: IncomingMessage,
    res: ServerResponse,
    query: URLSearchParams,
  ): Promise<void> {
    const { store } = this.options;
    const { type, namespace, name } = route;
    switch (req.method) {
      case 'GET':
        if (isTrue(query.get('watch'))) return this.serveWatch(route, res, query);
        if (name === undefined) return sendJson(res, 200, this.listBody(route, query));
        statusScope(route);
        return sendJson(res, 200, store.get(type, namespace, name));
      case 'POST':
        if (name !== undefined || (type.namespaced && namespace === undefined))
          throw methodNotAllowed('POST');
        return sendJson(res, 201, store.create(bindToRoute(route, await readObject(req))));
      case 'PUT':
        if (name === undefined) throw methodNotAllowed('PUT');
        return sendJson(
          res,
          200,
          store.update(bindToRoute(route, await readObject(req)), statusScope(route)),
        );
      case 'PATCH':
        if (name === undefined) throw methodNotAllowed('PATCH');
        return this.patch(route, req, res);
      case 'DELETE':
        if (name === undefined) throw methodNotAllowed('DELETE');
        return sendJson(res, 200, store.delete(type, namespace, name, await readDeleteOptions(req)));
      default:
        throw methodNotAllowed(req.method ?? '');
    }
  }

  private listBody(route: ResourceRoute, query: URLSearchParams): object {
    const { items, resourceVersion } = this.options.store.list(route.type, listOptions(route, query));
    return {
      kind: `${route.type.kind}List`,
      apiVersion: route.type.apiVersion,
      metadata: { resourceVersion },
      items,
    };
  }

  /** PATCH; a server-side apply of an absent object creates it, as the real server does. */
  private async patch(route: ResourceRoute, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const patchType = PATCH_CONTENT_TYPES[mediaType(req)];
    if (!patchType) throw unsupportedMediaType(mediaType(req), Object.keys(PATCH_CONTENT_TYPES));
    const raw = await readRaw(req);
    const patch = patchType === 'apply' ? parseYaml(raw) : parseJson(raw);
    const scope = statusScope(route);
    const { store } = this.options;
    const { type, namespace } = route;
    const name = route.name as string;
    if (patchType === 'apply' && !store.exists(type, namespace, name)) {
      return sendJson(
        res,
        201,
        store.create(bindToRoute(route, applyPatch(patchType, {}, patch) as KubeObject)),
      );
    }
    const patched = applyPatch(patchType, store.get(type, namespace, name), patch) as KubeObject;
    sendJson(res, 200, store.update(bindToRoute(route, patched), scope));
  }

  private serveWatch(route: ResourceRoute, res: ServerResponse, query: URLSearchParams): void {
    const requested = Number(query.get('timeoutSeconds'));
    const timeoutSeconds = requested > 0 ? requested : this.options.defaultWatchTimeoutSeconds;
    const sendInitialEvents = query.get('sendInitialEvents');
    const stop = serveWatch(this.options.store, route.type, res, {
      ...listOptions(route, query),
      resourceVersion: query.get('resourceVersion') ?? undefined,
      allowBookmarks: isTrue(query.get('allowWatchBookmarks')),
      sendInitialEvents: sendInitialEvents === null ? undefined : isTrue(sendInitialEvents),
      timeoutMs: timeoutSeconds * 1000,
      bookmarkIntervalMs: this.options.bookmarkIntervalMs,
    });
    const untrack = this.options.trackWatch(stop);
    res.on('close', untrack);
  }
}
