/**
 * Makes the OpenAPI 3.0 document say that nullable references (and nullable enums) accept `null`.
 *
 * zod's `openapi-3.0` target writes `RemediationSchema.nullable()` as
 * `{ nullable: true, allOf: [{ $ref: '#/components/schemas/Remediation' }] }`. OpenAPI 3.0.3 says
 * `nullable` "adds null to the allowed type … only if `type` is explicitly defined within the same
 * Schema Object", and the `allOf` member (an object) refuses `null` anyway: strict consumers (Ajv,
 * express-openapi-validator, contract testers) then reject the `null` the API really sends. The
 * schema that says what we mean is `anyOf: [<the reference>, <null>]`, with `null` written the way
 * @fastify/swagger writes it for 3.0 (`{ type: 'object', nullable: true, enum: [null] }`).
 * Likewise a nullable enum (`local_effect`, `severity`) lists `null` among its values.
 * Documentation only: responses are checked and serialized with the zod schemas themselves.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** Keywords that describe a schema without constraining it: they stay on the outer schema. */
const ANNOTATIONS = new Set(['title', 'description', 'default', 'example', 'deprecated', 'readOnly', 'writeOnly', 'externalDocs']);

/** Keywords whose values are data (examples, defaults, enum members), never schemas. */
const DATA_KEYS = new Set(['example', 'examples', 'default', 'enum']);

const NULL_ONLY: JsonObject = { type: 'object', nullable: true, enum: [null] };

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * `{ nullable: true, …constraints }` without `type` → `{ …annotations, anyOf: [constraints, null] }`;
 * a typed nullable enum gets `null` among its values: `nullable` does not override `enum` (the
 * OpenAPI 3.0 clarification of `nullable`, and how Ajv and contract testers read it), so
 * `{ type: 'string', nullable: true, enum: ['allow', 'deny'] }` refused the `null` the API sends.
 */
function rewrite(schema: JsonObject): JsonObject {
  if (schema.nullable !== true) return schema;
  if ('type' in schema) return Array.isArray(schema.enum) && !schema.enum.includes(null) ? { ...schema, enum: [...schema.enum, null] } : schema;
  const outer: JsonObject = {};
  const inner: JsonObject = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'nullable') continue;
    if (ANNOTATIONS.has(key) || key.startsWith('x-')) outer[key] = value;
    else inner[key] = value;
  }
  // A bare `{ nullable: true }` accepts every value already.
  if (Object.keys(inner).length === 0) return schema;
  const single = Object.keys(inner).length === 1 && Array.isArray(inner.allOf) && inner.allOf.length === 1 ? inner.allOf[0] : undefined;
  return { ...outer, anyOf: [isObject(single) ? single : inner, { ...NULL_ONLY }] };
}

function walk(node: Json): Json {
  if (Array.isArray(node)) return node.map(walk);
  if (!isObject(node)) return node;
  const out: JsonObject = {};
  // Examples and defaults are data, not schemas.
  for (const [key, value] of Object.entries(node)) out[key] = DATA_KEYS.has(key) ? value : walk(value);
  return rewrite(out);
}

/** Returns a copy of an OpenAPI 3.0 document with every type-less nullable schema rewritten. */
export function nullableForOpenApi30<T extends object>(document: T): T {
  const version = (document as { openapi?: unknown }).openapi;
  if (typeof version !== 'string' || !version.startsWith('3.0')) return document;
  return walk(document as unknown as Json) as unknown as T;
}
