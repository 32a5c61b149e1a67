/**
 * One watch over HTTP: a 200 response of newline-delimited JSON events (chunked), bookmarks on a
 * timer when the client allows them, the end-of-initial-events bookmark for `sendInitialEvents`,
 * and the server-side timeout. An expired resourceVersion is answered the way the real server
 * does: 200, then a single ERROR event carrying the 410 Expired Status, then the end.
 */
import type { ServerResponse } from 'node:http';
import type { ResourceType } from './resources.js';
import { ApiError } from './status.js';
import type { Store, WatchEvent, WatchOptions } from './store.js';

export interface WatchRequest extends WatchOptions {
  allowBookmarks: boolean;
  /** `sendInitialEvents=true`: ADDED for every object, then a bookmark marking their end. */
  sendInitialEvents: boolean | undefined;
  timeoutMs: number;
  bookmarkIntervalMs: number;
}

const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';

function bookmark(type: ResourceType, resourceVersion: string, initialEventsEnd = false): WatchEvent {
  const metadata = {
    resourceVersion,
    ...(initialEventsEnd ? { annotations: { [INITIAL_EVENTS_END]: 'true' } } : {}),
  };
  return { type: 'BOOKMARK', object: { apiVersion: type.apiVersion, kind: type.kind, metadata } };
}

/** Where the store should start: "0" replays the current objects, a version resumes after it. */
function startVersion(store: Store, request: WatchRequest): string | undefined {
  if (request.sendInitialEvents === true) return '0';
  if (request.sendInitialEvents === false && !request.resourceVersion) return store.resourceVersion();
  return request.resourceVersion;
}

/**
 * Serves the watch until the client goes away, the timeout passes, or `stop()` is called.
 * Throws (before anything is sent) when the request itself is bad, e.g. a malformed selector.
 */
export function serveWatch(
  store: Store,
  type: ResourceType,
  res: ServerResponse,
  request: WatchRequest,
): () => void {
  const start = () => {
    if (res.headersSent) return;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
  };
  const send = (event: WatchEvent) => {
    start();
    res.write(`${JSON.stringify(event)}\n`);
  };
  let unregister = () => {};
  const timers: NodeJS.Timeout[] = [];
  const stop = () => {
    unregister();
    timers.forEach(clearTimeout);
    if (!res.writableEnded) res.end();
  };
  res.on('close', stop);
  try {
    unregister = store.watch(type, { ...request, resourceVersion: startVersion(store, request) }, send);
  } catch (error) {
    // Bad selectors are a plain error response; only an expired version is an event.
    if (!(error instanceof ApiError) || error.code !== 410) throw error;
    send({ type: 'ERROR', object: error.toStatus() as unknown as WatchEvent['object'] });
    stop();
    return stop;
  }
  start();
  if (request.sendInitialEvents === true && request.allowBookmarks)
    send(bookmark(type, store.resourceVersion(), true));
  if (request.allowBookmarks) {
    timers.push(setInterval(() => send(bookmark(type, store.resourceVersion())), request.bookmarkIntervalMs));
  }
  timers.push(setTimeout(stop, request.timeoutMs));
  return stop;
}
