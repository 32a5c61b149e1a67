/**
 * Decoding of the protobuf request bodies typed Go clients send (`kubectl create
 * namespace|configmap|secret|serviceaccount`, Helm's release Secrets and their deletion POST or
 * DELETE `application/vnd.kubernetes.protobuf` and do not fall back to JSON on 415). Only the kinds
 * below, only the fields those clients set; anything else answers 415. Pure.
 *
 * Wire format: the magic `k8s\0`, then a runtime.Unknown {1: TypeMeta {1: apiVersion, 2: kind},
 * 2: raw}, where raw is the object's own message (field numbers from k8s.io/api generated.proto).
 */
import { unsupportedMediaType } from './status.js';
import type { KubeObject } from './store.js';

export const PROTOBUF_MEDIA_TYPE = 'application/vnd.kubernetes.protobuf';

type Scalar = 'string' | 'bytes' | 'bool';
type FieldType = Scalar | 'stringMap' | 'bytesMap' | MessageSchema;
interface FieldSchema {
  name: string;
  type: FieldType;
  repeated?: boolean;
}
type MessageSchema = { [fieldNumber: number]: FieldSchema };

const OBJECT_META: MessageSchema = {
  1: { name: 'name', type: 'string' },
  2: { name: 'generateName', type: 'string' },
  3: { name: 'namespace', type: 'string' },
  5: { name: 'uid', type: 'string' },
  6: { name: 'resourceVersion', type: 'string' },
  11: { name: 'labels', type: 'stringMap' },
  12: { name: 'annotations', type: 'stringMap' },
  14: { name: 'finalizers', type: 'string', repeated: true },
};
const METADATA: FieldSchema = { name: 'metadata', type: OBJECT_META };

const DELETE_OPTIONS: MessageSchema = {
  2: {
    name: 'preconditions',
    type: { 1: { name: 'uid', type: 'string' }, 2: { name: 'resourceVersion', type: 'string' } },
  },
  4: { name: 'propagationPolicy', type: 'string' },
};

const SCHEMAS: Record<string, MessageSchema> = {
  'v1/DeleteOptions': DELETE_OPTIONS,
  'meta.k8s.io/v1/DeleteOptions': DELETE_OPTIONS,
  'v1/Namespace': {
    1: METADATA,
    2: { name: 'spec', type: { 1: { name: 'finalizers', type: 'string', repeated: true } } },
  },
  'v1/ConfigMap': {
    1: METADATA,
    2: { name: 'data', type: 'stringMap' },
    3: { name: 'binaryData', type: 'bytesMap' },
    4: { name: 'immutable', type: 'bool' },
  },
  'v1/Secret': {
    1: METADATA,
    2: { name: 'data', type: 'bytesMap' },
    3: { name: 'type', type: 'string' },
    4: { name: 'stringData', type: 'stringMap' },
    5: { name: 'immutable', type: 'bool' },
  },
  'v1/ServiceAccount': {
    1: METADATA,
    3: { name: 'imagePullSecrets', type: { 1: { name: 'name', type: 'string' } }, repeated: true },
    4: { name: 'automountServiceAccountToken', type: 'bool' },
  },
};

const UNKNOWN: MessageSchema = {
  1: {
    name: 'typeMeta',
    type: { 1: { name: 'apiVersion', type: 'string' }, 2: { name: 'kind', type: 'string' } },
  },
  2: { name: 'raw', type: 'bytes' },
};

interface RawField {
  number: number;
  /** A varint's value, or the bytes of a length-delimited field. */
  value: bigint | Buffer;
}

class Reader {
  private offset = 0;
  constructor(private readonly buffer: Buffer) {}

  get done(): boolean {
    return this.offset >= this.buffer.length;
  }

  varint(): bigint {
    let result = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      const byte = this.buffer[this.offset++];
      if (byte === undefined) throw new Error('truncated varint');
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
    }
    throw new Error('varint too long');
  }

  bytes(length: number): Buffer {
    if (this.offset + length > this.buffer.length) throw new Error('truncated field');
    const slice = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return slice;
  }

  field(): RawField {
    const tag = this.varint();
    const number = Number(tag >> 3n);
    switch (Number(tag & 7n)) {
      case 0:
        return { number, value: this.varint() };
      case 1:
        return { number, value: this.bytes(8) };
      case 2:
        return { number, value: this.bytes(Number(this.varint())) };
      case 5:
        return { number, value: this.bytes(4) };
      default:
        throw new Error(`unsupported wire type in field ${number}`);
    }
  }
}

function fields(buffer: Buffer): RawField[] {
  const reader = new Reader(buffer);
  const result: RawField[] = [];
  while (!reader.done) result.push(reader.field());
  return result;
}

function asBuffer(value: bigint | Buffer): Buffer {
  if (!Buffer.isBuffer(value)) throw new Error('expected a length-delimited field');
  return value;
}

function mapEntry(value: bigint | Buffer, valueType: 'string' | 'bytes'): [string, string] {
  let key = '';
  let entryValue = '';
  for (const field of fields(asBuffer(value))) {
    const bytes = asBuffer(field.value);
    if (field.number === 1) key = bytes.toString('utf8');
    if (field.number === 2) entryValue = bytes.toString(valueType === 'string' ? 'utf8' : 'base64');
  }
  return [key, entryValue];
}

function decodeValue(type: FieldType, value: bigint | Buffer): unknown {
  if (type === 'string') return asBuffer(value).toString('utf8');
  if (type === 'bytes') return asBuffer(value);
  if (type === 'bool') return value === 1n;
  if (type === 'stringMap' || type === 'bytesMap')
    return mapEntry(value, type === 'stringMap' ? 'string' : 'bytes');
  return decodeMessage(asBuffer(value), type);
}

function decodeMessage(buffer: Buffer, schema: MessageSchema): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const field of fields(buffer)) {
    const spec = schema[field.number];
    if (!spec) continue;
    const value = decodeValue(spec.type, field.value);
    // Go encodes unset optional strings as "", which JSON omits.
    if (value === '' && !spec.repeated) continue;
    if (spec.type === 'stringMap' || spec.type === 'bytesMap') {
      const [key, entryValue] = value as [string, string];
      result[spec.name] = { ...((result[spec.name] as object) ?? {}), [key]: entryValue };
    } else if (spec.repeated) {
      result[spec.name] = [...((result[spec.name] as unknown[]) ?? []), value];
    } else {
      result[spec.name] = value;
    }
  }
  return result;
}

const MAGIC = Buffer.from('k8s\0', 'latin1');

function unreadable(why: string) {
  return unsupportedMediaType(`${PROTOBUF_MEDIA_TYPE} ${why}`, ['application/json']);
}

/** The object in a protobuf request body, as JSON; 415 for kinds (or bodies) this module does not read. */
export function decodeProtobufObject(body: Buffer): KubeObject {
  if (!body.subarray(0, MAGIC.length).equals(MAGIC)) throw unreadable('without the k8s envelope');
  let envelope: Record<string, unknown>;
  try {
    envelope = decodeMessage(body.subarray(MAGIC.length), UNKNOWN);
  } catch (error) {
    throw unreadable(`(${(error as Error).message})`);
  }
  const { apiVersion, kind } = (envelope.typeMeta ?? {}) as { apiVersion?: string; kind?: string };
  const schema = SCHEMAS[`${apiVersion}/${kind}`];
  if (!schema)
    throw unreadable(
      `for ${apiVersion}/${kind}: only ${Object.keys(SCHEMAS).join(', ')} are read as protobuf`,
    );
  return {
    apiVersion,
    kind,
    ...decodeMessage((envelope.raw as Buffer | undefined) ?? Buffer.alloc(0), schema),
  };
}
