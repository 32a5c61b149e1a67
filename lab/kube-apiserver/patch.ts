/**
 * The three PATCH flavours kubectl and client-node send. Pure: each returns a new document.
 * - JSON merge patch (RFC 7386);
 * - strategic merge patch: merge patch plus keyed list merging and the `$patch`,
 *   `$retainKeys`, `$deleteFromPrimitiveList/…`, `$setElementOrder/…` directives kubectl emits
 *   (merge keys come from a small table of well-known fields instead of Go struct tags);
 * - JSON patch (RFC 6902);
 * - server-side apply, approximated (see applyPatch).
 */
import { ApiError } from './status.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function patchError(message: string): ApiError {
  return new ApiError(422, 'Invalid', message);
}

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const result: JsonObject = isObject(target) ? structuredClone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value) as Json;
  }
  return result;
}

/** Merge keys of lists of objects, by field name; a list not named here merges on `name` if every item has one. */
const MERGE_KEYS: Record<string, string[]> = {
  ports: ['containerPort', 'port'],
  volumeMounts: ['mountPath'],
  volumeDevices: ['devicePath'],
  conditions: ['type'],
  addresses: ['type'],
  taints: ['key'],
  hostAliases: ['ip'],
};

function mergeKeyOf(field: string, items: Json[]): string | undefined {
  const objects = items.filter(isObject);
  if (objects.length !== items.length || objects.length === 0) return undefined;
  const candidates = [...(MERGE_KEYS[field] ?? []), 'name'];
  return candidates.find((key) => objects.every((o) => key in o));
}

const ELEMENT_ORDER = '$setElementOrder/';
const DELETE_FROM_PRIMITIVE_LIST = '$deleteFromPrimitiveList/';

function mergeKeyedList(current: Json[], patch: JsonObject[], key: string): Json[] {
  if (patch.some((item) => item.$patch === 'replace')) {
    return patch.filter((item) => item.$patch !== 'replace').map(stripDirectives);
  }
  const result = current.map((item) => structuredClone(item));
  for (const item of patch) {
    const index = result.findIndex((existing) => isObject(existing) && existing[key] === item[key]);
    if (item.$patch === 'delete') {
      if (index >= 0) result.splice(index, 1);
    } else if (index >= 0) {
      result[index] = strategicMergePatch(result[index], item) as Json;
    } else {
      result.push(stripDirectives(item));
    }
  }
  return result;
}

function mergeList(field: string, current: Json, patch: Json[]): Json[] {
  const currentList = Array.isArray(current) ? current : [];
  const key = mergeKeyOf(field, [...currentList, ...patch]);
  if (key === undefined) return patch.map((item) => (isObject(item) ? stripDirectives(item) : item));
  return mergeKeyedList(currentList, patch as JsonObject[], key);
}

function stripDirectives(object: JsonObject): JsonObject {
  return strategicMergePatch({}, object) as JsonObject;
}

function applyValue(result: JsonObject, key: string, value: Json): void {
  if (value === null) delete result[key];
  else if (Array.isArray(value)) result[key] = mergeList(key, result[key], value);
  else if (isObject(value)) result[key] = strategicMergePatch(result[key], value) as Json;
  else result[key] = value;
}

function applyDirectiveKey(result: JsonObject, key: string, value: Json): boolean {
  if (key.startsWith(ELEMENT_ORDER) || key === '$patch' || key === '$retainKeys') return true;
  if (key.startsWith(DELETE_FROM_PRIMITIVE_LIST)) {
    const field = key.slice(DELETE_FROM_PRIMITIVE_LIST.length);
    const removed = new Set((Array.isArray(value) ? value : []).map((v) => JSON.stringify(v)));
    const list = result[field];
    if (Array.isArray(list)) result[field] = list.filter((v) => !removed.has(JSON.stringify(v)));
    return true;
  }
  return false;
}

export function strategicMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  if (patch.$patch === 'delete') return null;
  const base: JsonObject = patch.$patch === 'replace' || !isObject(target) ? {} : structuredClone(target);
  for (const [key, value] of Object.entries(patch)) {
    if (!applyDirectiveKey(base, key, value)) applyValue(base, key, value);
  }
  const retain = patch.$retainKeys;
  if (Array.isArray(retain)) {
    for (const key of Object.keys(base)) if (!retain.includes(key)) delete base[key];
  }
  return base;
}

interface JsonPatchOperation {
  op: string;
  path: string;
  from?: string;
  value?: Json;
}

function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw patchError(`invalid JSON pointer "${pointer}"`);
  return pointer
    .slice(1)
    .split('/')
    .map((token) => token.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function childOf(container: Json, token: string, pointer: string): Json {
  if (Array.isArray(container)) {
    const index = Number(token);
    if (!Number.isInteger(index) || index < 0 || index >= container.length)
      throw patchError(`index out of range at "${pointer}"`);
    return container[index];
  }
  if (isObject(container) && token in container) return container[token];
  throw patchError(`path "${pointer}" does not exist`);
}

function resolveParent(document: Json, pointer: string): { parent: Json; last: string } {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) throw patchError('the root cannot be the target of this operation');
  let parent = document;
  for (const token of tokens.slice(0, -1)) parent = childOf(parent, token, pointer);
  return { parent, last: tokens[tokens.length - 1] };
}

function getAt(document: Json, pointer: string): Json {
  return parsePointer(pointer).reduce((node, token) => childOf(node, token, pointer), document);
}

function addAt(document: Json, pointer: string, value: Json): Json {
  if (pointer === '') return value;
  const { parent, last } = resolveParent(document, pointer);
  if (Array.isArray(parent)) {
    const index = last === '-' ? parent.length : Number(last);
    if (!Number.isInteger(index) || index < 0 || index > parent.length)
      throw patchError(`index out of range at "${pointer}"`);
    parent.splice(index, 0, value);
  } else if (isObject(parent)) {
    parent[last] = value;
  } else {
    throw patchError(`cannot add at "${pointer}": parent is not a container`);
  }
  return document;
}

function removeAt(document: Json, pointer: string): Json {
  const { parent, last } = resolveParent(document, pointer);
  childOf(parent, last, pointer);
  if (Array.isArray(parent)) parent.splice(Number(last), 1);
  else delete (parent as JsonObject)[last];
  return document;
}

function applyOperation(document: Json, operation: JsonPatchOperation): Json {
  const { op, path } = operation;
  switch (op) {
    case 'add':
      return addAt(document, path, structuredClone(operation.value ?? null));
    case 'remove':
      return removeAt(document, path);
    case 'replace':
      return addAt(removeAt(document, path), path, structuredClone(operation.value ?? null));
    case 'move': {
      const value = getAt(document, operation.from ?? '');
      return addAt(removeAt(document, operation.from ?? ''), path, value);
    }
    case 'copy':
      return addAt(document, path, structuredClone(getAt(document, operation.from ?? '')));
    case 'test':
      if (JSON.stringify(getAt(document, path)) !== JSON.stringify(operation.value))
        throw patchError(`test failed at "${path}"`);
      return document;
    default:
      throw patchError(`unknown JSON patch operation "${op}"`);
  }
}

export function jsonPatch(target: unknown, operations: unknown): unknown {
  if (!Array.isArray(operations))
    throw new ApiError(400, 'BadRequest', 'a JSON patch must be an array of operations');
  return (operations as JsonPatchOperation[]).reduce(applyOperation, structuredClone(target) as Json);
}

export type PatchType = 'json' | 'merge' | 'strategic' | 'apply';

export const PATCH_CONTENT_TYPES: Record<string, PatchType> = {
  'application/json-patch+json': 'json',
  'application/merge-patch+json': 'merge',
  'application/strategic-merge-patch+json': 'strategic',
  'application/apply-patch+yaml': 'apply',
};

/**
 * `apply` approximates server-side apply (Helm 4 uses it by default) as a strategic merge of the
 * applied configuration: fields are set as given, but there is no field ownership, so a field
 * dropped from the configuration stays on the object.
 */
export function applyPatch(type: PatchType, target: unknown, patch: unknown): unknown {
  if (type === 'json') return jsonPatch(target, patch);
  if (!isObject(patch)) throw new ApiError(400, 'BadRequest', 'a merge patch must be a JSON object');
  return type === 'merge' ? mergePatch(target, patch) : strategicMergePatch(target, patch);
}
