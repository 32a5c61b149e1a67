/**
 * OpenAPI, only as much as kubectl needs: `kubectl apply/create` download `/openapi/v2` before
 * validating and fail if they cannot. An empty document (zero bytes is a valid empty protobuf
 * message) makes kubectl skip client-side validation of kinds it finds no schema for, and compute
 * apply patches from its built-in types. Pure.
 */
import { VERSION_INFO } from './discovery.js';

const PROTOBUF_V2 = 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf';
/** What the real server answers (a valid MIME type, unlike the `@` form clients ask for). */
const PROTOBUF_V2_RESPONSE = 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf';

export interface OpenApiAnswer {
  contentType: string;
  body: string;
}

export function openApiDocument(path: string, accept: string): OpenApiAnswer | undefined {
  if (path !== '/openapi/v2') return undefined;
  if (accept.includes(PROTOBUF_V2)) return { contentType: PROTOBUF_V2_RESPONSE, body: '' };
  const document = {
    swagger: '2.0',
    info: { title: 'Kubernetes', version: VERSION_INFO.gitVersion },
    paths: {},
    definitions: {},
  };
  return { contentType: 'application/json', body: JSON.stringify(document) };
}
