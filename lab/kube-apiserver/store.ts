/**
 * The in-memory object store: one global, monotonically increasing resourceVersion (as etcd's
 * revision), a bounded history of events for watches that resume from a version (older ones get
 * 410 Expired, as after an etcd compaction), and synchronous fan-out to watchers — so a watch
 * that registers sees every later event exactly once and in order.
 *
 * The HTTP layer and the lab (in process, e.g. playing the kubelet) use the same methods.
 * Objects go in and come out as copies; callers never hold stored state.
 */
import { randomUUID } from 'node:crypto';
import { INITIAL_NAMESPACES, type KindRef, type ResourceType, resourceTypeOf } from './resources.js';
import { type Predicate, parseFieldSelector, parseLabelSelector } from './selectors.js';
import { ApiError, alreadyExists, badRequest, conflict, expired, invalid, notFound } from './status.js';

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  [key: string]: unknown;
}

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface WatchEvent {
  type: EventType | 'BOOKMARK' | 'ERROR';
  object: KubeObject;
}

interface StoredEvent {
  rv: number;
  type: ResourceType;
  kind: EventType;
  object: KubeObject;
  /** The object before a MODIFIED, to turn selector transitions into ADDED/DELETED. */
  previous?: KubeObject;
}

export interface ListOptions {
  /** Absent: all namespaces. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

export interface ListResult {
  items: KubeObject[];
  resourceVersion: string;
}

export interface WatchOptions extends ListOptions {
  /** Resume after this version; absent, "" or "0": start with ADDED for every current object. */
  resourceVersion?: string;
}

export interface DeleteOptions {
  preconditions?: { resourceVersion?: string; uid?: string };
}

export interface StoreOptions {
  /** How many events the history keeps for watches resuming from a version. */
  historyWindow?: number;
  /** Clock for creationTimestamp (tests). */
  now?: () => Date;
}

type Listener = (event: WatchEvent) => void;

interface Watcher {
  type: ResourceType;
  matches: Predicate;
  listener: Listener;
}

const DEFAULT_HISTORY_WINDOW = 10_000;
const NAME_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

function randomSuffix(): string {
  return Array.from({ length: 5 }, () => NAME_CHARS[Math.floor(Math.random() * NAME_CHARS.length)]).join('');
}

function timestamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Everything but metadata and status: a change there bumps `metadata.generation`. */
function specOf(object: KubeObject): string {
  const rest = { ...object };
  delete rest.metadata;
  delete rest.status;
  return JSON.stringify(rest);
}

export class Store {
  private readonly objects = new Map<ResourceType, Map<string, KubeObject>>();
  private readonly history: StoredEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly historyWindow: number;
  private readonly now: () => Date;
  private revision = 0;
  /** The version of the newest event dropped from history: resuming from an older one is impossible. */
  private compactedThrough = 0;

  constructor(options: StoreOptions = {}) {
    this.historyWindow = Math.max(1, options.historyWindow ?? DEFAULT_HISTORY_WINDOW);
    this.now = options.now ?? (() => new Date());
    for (const name of INITIAL_NAMESPACES) {
      this.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    }
  }

  resourceVersion(): string {
    return String(this.revision);
  }

  get(ref: KindRef, namespace: string | undefined, name: string): KubeObject {
    const type = this.typeOf(ref);
    const object = this.table(type).get(this.keyOf(type, namespace, name));
    if (!object) throw notFound(type, name);
    return structuredClone(object);
  }

  exists(ref: KindRef, namespace: string | undefined, name: string): boolean {
    const type = this.typeOf(ref);
    return this.table(type).has(this.keyOf(type, namespace, name));
  }

  list(ref: KindRef, options: ListOptions = {}): ListResult {
    const type = this.typeOf(ref);
    const matches = this.predicate(type, options);
    const items = [...this.table(type).entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, object]) => object)
      .filter(matches)
      .map((object) => structuredClone(object));
    return { items, resourceVersion: this.resourceVersion() };
  }

  create(input: KubeObject): KubeObject {
    const type = this.typeOf(input);
    const object = this.normalize(type, input);
    const metadata = object.metadata as ObjectMeta;
    if (!metadata.name && metadata.generateName) metadata.name = this.generatedName(type, metadata);
    if (!metadata.name)
      throw invalid(type, '', 'metadata.name: Required value: name or generateName is required');
    this.requireNamespace(type, metadata.namespace);
    const key = this.keyOf(type, metadata.namespace, metadata.name);
    if (this.table(type).has(key)) throw alreadyExists(type, metadata.name);
    metadata.uid = randomUUID();
    metadata.creationTimestamp = timestamp(this.now());
    metadata.generation = 1;
    delete metadata.deletionTimestamp;
    // Namespaces are deleted at once here (no Terminating phase), so a stored one is always Active.
    if (type.kind === 'Namespace') object.status = { phase: 'Active' };
    return this.commit(type, key, 'ADDED', object);
  }

  /** PUT: a stale `metadata.resourceVersion` is a Conflict; an absent one updates unconditionally. */
  update(input: KubeObject, options: { subresource?: 'status' } = {}): KubeObject {
    const type = this.typeOf(input);
    const object = this.normalize(type, input);
    const metadata = object.metadata as ObjectMeta;
    const name = metadata.name ?? '';
    const key = this.keyOf(type, metadata.namespace, name);
    const current = this.table(type).get(key);
    if (!current) throw notFound(type, name);
    if (metadata.resourceVersion && metadata.resourceVersion !== current.metadata?.resourceVersion) {
      throw conflict(
        type,
        name,
        'the object has been modified; please apply your changes to the latest version and try again',
      );
    }
    return this.commit(type, key, 'MODIFIED', this.merged(type, current, object, options.subresource));
  }

  /** Create or replace, no version check: the lab's "make it so". */
  apply(input: KubeObject): KubeObject {
    const type = this.typeOf(input);
    const object = this.normalize(type, input);
    const metadata = object.metadata as ObjectMeta;
    const key = this.keyOf(type, metadata.namespace, metadata.name ?? '');
    const current = this.table(type).get(key);
    if (!current) return this.create(object);
    delete metadata.resourceVersion;
    return this.commit(type, key, 'MODIFIED', this.merged(type, current, object, 'all'));
  }

  delete(ref: KindRef, namespace: string | undefined, name: string, options: DeleteOptions = {}): KubeObject {
    const type = this.typeOf(ref);
    const key = this.keyOf(type, namespace, name);
    const current = this.table(type).get(key);
    if (!current) throw notFound(type, name);
    const { resourceVersion, uid } = options.preconditions ?? {};
    if (resourceVersion && resourceVersion !== current.metadata?.resourceVersion) {
      throw conflict(
        type,
        name,
        `the ResourceVersion in the precondition (${resourceVersion}) does not match the ResourceVersion in record (${current.metadata?.resourceVersion}). The object might have been modified`,
      );
    }
    if (uid && uid !== current.metadata?.uid) {
      throw conflict(
        type,
        name,
        `the UID in the precondition (${uid}) does not match the UID in record (${current.metadata?.uid}). The object might have been deleted and then recreated`,
      );
    }
    if (type.kind === 'Namespace') this.deleteNamespaceContents(name);
    this.table(type).delete(key);
    return this.commit(type, key, 'DELETED', structuredClone(current));
  }

  /**
   * Registers a watcher and replays what it missed; throws 410 Expired when the requested
   * version is older than the history window. Returns the function that stops the watch.
   */
  watch(ref: KindRef, options: WatchOptions, listener: Listener): () => void {
    const type = this.typeOf(ref);
    const matches = this.predicate(type, options);
    const from = Number(options.resourceVersion || '0');
    if (!Number.isInteger(from) || from < 0)
      throw badRequest(`invalid resourceVersion "${options.resourceVersion}"`);
    if (from > 0 && from < this.compactedThrough) throw expired(from, this.compactedThrough + 1);
    const watcher: Watcher = { type, matches, listener };
    if (from === 0) {
      for (const object of this.list(type, options).items) listener({ type: 'ADDED', object });
    } else {
      for (const event of this.history) if (event.rv > from) this.deliver(watcher, event);
    }
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }

  /** How many watches are registered (lets tests check that closed streams unregister). */
  get watcherCount(): number {
    return this.watchers.size;
  }

  private typeOf(ref: KindRef): ResourceType {
    const type = resourceTypeOf(ref);
    if (!type)
      throw badRequest(`no resource of kind "${ref.kind}" in apiVersion "${ref.apiVersion}" is served here`);
    return type;
  }

  private table(type: ResourceType): Map<string, KubeObject> {
    let table = this.objects.get(type);
    if (!table) {
      table = new Map();
      this.objects.set(type, table);
    }
    return table;
  }

  private keyOf(type: ResourceType, namespace: string | undefined, name: string): string {
    return type.namespaced ? `${namespace ?? 'default'}/${name}` : name;
  }

  private predicate(type: ResourceType, options: ListOptions): Predicate {
    const labels = parseLabelSelector(options.labelSelector);
    const fields = parseFieldSelector(options.fieldSelector);
    const namespace = type.namespaced ? options.namespace : undefined;
    return (object) =>
      (namespace === undefined || (object as KubeObject).metadata?.namespace === namespace) &&
      labels(object) &&
      fields(object);
  }

  /** A copy with kind/apiVersion filled in and the namespace set (namespaced) or removed (cluster-scoped). */
  private normalize(type: ResourceType, input: KubeObject): KubeObject {
    const object = structuredClone(input);
    object.apiVersion = type.apiVersion;
    object.kind = type.kind;
    const metadata: ObjectMeta = { ...(object.metadata ?? {}) };
    if (type.namespaced) metadata.namespace = metadata.namespace || 'default';
    else delete metadata.namespace;
    object.metadata = metadata;
    return object;
  }

  private requireNamespace(type: ResourceType, namespace: string | undefined): void {
    if (!type.namespaced) return;
    const namespaces = this.objects.get(this.typeOf({ apiVersion: 'v1', kind: 'Namespace' }));
    if (!namespaces?.has(namespace ?? ''))
      throw notFound({ plural: 'namespaces', group: '' }, namespace ?? '');
  }

  private generatedName(type: ResourceType, metadata: ObjectMeta): string {
    for (let attempt = 0; attempt < 16; attempt++) {
      const name = `${metadata.generateName}${randomSuffix()}`;
      if (!this.table(type).has(this.keyOf(type, metadata.namespace, name))) return name;
    }
    throw new ApiError(
      500,
      'AlreadyExists',
      `could not generate a unique name from "${metadata.generateName}"`,
    );
  }

  /** The stored object after an update: identity fields from `current`, the rest from `next` as the subresource allows. */
  private merged(
    type: ResourceType,
    current: KubeObject,
    next: KubeObject,
    scope: 'status' | 'all' | undefined,
  ): KubeObject {
    const identity = current.metadata as ObjectMeta;
    let result: KubeObject;
    if (scope === 'status') {
      result = { ...structuredClone(current), status: next.status };
    } else {
      result = next;
      if (scope === undefined && type.hasStatus) {
        if (current.status === undefined) delete result.status;
        else result.status = structuredClone(current.status);
      }
    }
    const metadata = result.metadata as ObjectMeta;
    metadata.uid = identity.uid;
    metadata.creationTimestamp = identity.creationTimestamp;
    const specChanged = specOf(result) !== specOf(current);
    metadata.generation = (identity.generation ?? 1) + (specChanged ? 1 : 0);
    return result;
  }

  private deleteNamespaceContents(namespace: string): void {
    for (const [type, table] of this.objects) {
      if (!type.namespaced) continue;
      for (const [key, object] of [...table]) {
        if (object.metadata?.namespace !== namespace) continue;
        table.delete(key);
        this.commit(type, key, 'DELETED', structuredClone(object));
      }
    }
  }

  private commit(type: ResourceType, key: string, kind: EventType, object: KubeObject): KubeObject {
    this.revision += 1;
    (object.metadata as ObjectMeta).resourceVersion = String(this.revision);
    const table = this.table(type);
    const previous = table.get(key);
    if (kind !== 'DELETED') table.set(key, object);
    const event: StoredEvent = {
      rv: this.revision,
      type,
      kind,
      object,
      previous: kind === 'MODIFIED' ? previous : undefined,
    };
    this.remember(event);
    for (const watcher of this.watchers) this.deliver(watcher, event);
    return structuredClone(object);
  }

  private remember(event: StoredEvent): void {
    this.history.push(event);
    while (this.history.length > this.historyWindow) {
      this.compactedThrough = (this.history.shift() as StoredEvent).rv;
    }
  }

  /** Sends an event as this watcher sees it: a change across its selector is an ADDED or a DELETED. */
  private deliver(watcher: Watcher, event: StoredEvent): void {
    if (watcher.type !== event.type) return;
    const now = watcher.matches(event.object);
    const before = event.previous !== undefined && watcher.matches(event.previous);
    let type: EventType | undefined;
    if (event.kind !== 'MODIFIED') type = now ? event.kind : undefined;
    else if (now) type = before ? 'MODIFIED' : 'ADDED';
    else type = before ? 'DELETED' : undefined;
    if (type) watcher.listener({ type, object: structuredClone(event.object) });
  }
}
