/**
 * The OpenAPI document at /docs/json: every API operation is summarised, and the main operations
 * carry an example request body and an example 2xx response that their own zod schemas accept.
 */
import type { RouteOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { API_PREFIX, registeredRoutes } from './app.js';
import { ApiKeySchema } from './routes/api-keys.js';
import { AuditRecordSchema } from './routes/audit.js';
import { ErrorBodySchema } from './schemas/common.js';
import * as records from '../shared/schemas/records.js';
import { type Harness, startHarness } from './test-support.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

interface Operation {
  summary?: string;
  requestBody?: { content?: Record<string, MediaType> };
  responses?: Record<string, { content?: Record<string, MediaType> }>;
}
interface MediaType {
  schema?: JsonObject;
  example?: Json;
  examples?: Record<string, { value?: Json }>;
}
interface OpenApiDoc {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, JsonObject> };
}

/** The operations that must document an example request and response. */
const COVERED: ReadonlyArray<readonly [method: string, path: string]> = [
  ['post', '/auth/login'],
  ['post', '/tenants'],
  ['post', '/devices'],
  ['post', '/policies'],
  ['post', '/policy-rules'],
  ['post', '/roles/policies/assign'],
  ['post', '/users/roles/assign'],
  ['post', '/remedial-actions'],
  ['post', '/webhooks'],
  ['post', '/api-keys'],
  ['post', '/policies/explain'],
  ['post', '/policy-tests'],
];

const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The example a schema documents: its own, the one of the schema it references, or (for objects
 * and arrays) one assembled from its parts. `undefined` when a required part has none.
 */
function exampleOf(doc: OpenApiDoc, schema: JsonObject, depth = 0): Json | undefined {
  if (depth > 20) return undefined;
  if (schema.example !== undefined) return schema.example;
  const examples = schema.examples;
  if (Array.isArray(examples) && examples.length > 0) return examples[0];
  const ref = schema.$ref;
  if (typeof ref === 'string') {
    const name = ref.replace('#/components/schemas/', '');
    const target = doc.components?.schemas?.[name];
    return target ? exampleOf(doc, target, depth + 1) : undefined;
  }
  const allOf = schema.allOf;
  if (Array.isArray(allOf) && allOf.length === 1 && isObject(allOf[0])) return exampleOf(doc, allOf[0], depth + 1);
  if (schema.type === 'array' && isObject(schema.items)) {
    const item = exampleOf(doc, schema.items, depth + 1);
    return item === undefined ? undefined : [item];
  }
  if (schema.type === 'object' && isObject(schema.properties)) {
    const required = Array.isArray(schema.required) ? schema.required : [];
    const out: JsonObject = {};
    for (const [key, prop] of Object.entries(schema.properties)) {
      const value = isObject(prop) ? exampleOf(doc, prop, depth + 1) : undefined;
      if (value !== undefined) out[key] = value;
      else if (required.includes(key)) return undefined;
    }
    return out;
  }
  return undefined;
}

/** An example on the media type (example / examples) or on its schema: either is accepted. */
function mediaExample(doc: OpenApiDoc, media: MediaType | undefined): Json | undefined {
  if (!media) return undefined;
  if (media.example !== undefined) return media.example;
  const first = media.examples ? Object.values(media.examples)[0] : undefined;
  if (first?.value !== undefined) return first.value;
  return media.schema ? exampleOf(doc, media.schema) : undefined;
}

function isZod(v: unknown): v is z.ZodType {
  return v instanceof z.ZodType;
}

describe('OpenAPI document', () => {
  let h: Harness;
  let doc: OpenApiDoc;

  beforeAll(async () => {
    h = await startHarness();
    const res = await h.app.inject({ method: 'GET', url: '/docs/json' });
    expect(res.statusCode).toBe(200);
    doc = res.json<OpenApiDoc>();
  });
  afterAll(() => h.close());

  function route(method: string, path: string): RouteOptions {
    const found = registeredRoutes(h.app).find(
      (r) => r.url === `${API_PREFIX}${path}` && [r.method].flat().some((m) => m.toLowerCase() === method),
    );
    if (!found) throw new Error(`no route ${method} ${path}`);
    return found;
  }

  it('is OpenAPI 3.x', () => {
    expect(doc.openapi).toMatch(/^3\.\d+\.\d+$/);
  });

  it('gives every /api/v1 operation a summary', () => {
    const missing: string[] = [];
    let count = 0;
    for (const [path, item] of Object.entries(doc.paths)) {
      if (!path.startsWith(API_PREFIX)) continue;
      for (const [method, op] of Object.entries(item)) {
        if (!HTTP_METHODS.has(method)) continue;
        count++;
        if (typeof op.summary !== 'string' || op.summary.trim() === '') missing.push(`${method.toUpperCase()} ${path}`);
      }
    }
    expect(count).toBeGreaterThan(COVERED.length);
    expect(missing).toEqual([]);
  });

  describe.each(COVERED)('%s %s', (method, path) => {
    const op = (): Operation => {
      const found = doc.paths[`${API_PREFIX}${path}`]?.[method];
      if (!found) throw new Error(`${method} ${path} is not in the document`);
      return found;
    };

    it('documents an example request body its schema accepts', () => {
      const example = mediaExample(doc, op().requestBody?.content?.['application/json']);
      expect(example, 'request body example').toBeDefined();
      const body = route(method, path).schema?.body;
      expect(isZod(body), 'the route body is a zod schema').toBe(true);
      if (!isZod(body)) return;
      const parsed = body.safeParse(example);
      expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
    });

    it('documents an example 2xx response its schema accepts', () => {
      const responses = op().responses ?? {};
      const success = Object.keys(responses).filter((code) => /^2\d\d$/.test(code) && code !== '204');
      expect(success.length, '2xx responses with a body').toBeGreaterThan(0);
      const zodResponses = (route(method, path).schema?.response ?? {}) as Record<string, unknown>;
      for (const code of success) {
        const example = mediaExample(doc, responses[code]?.content?.['application/json']);
        expect(example, `${code} response example`).toBeDefined();
        const schema = zodResponses[code];
        expect(isZod(schema), `the ${code} response is a zod schema`).toBe(true);
        if (!isZod(schema)) continue;
        const parsed = schema.safeParse(example);
        expect(parsed.success, `${code}: ${JSON.stringify(parsed.error?.issues)}`).toBe(true);
      }
    });
  });

  it('gives every record component an example its JSON schema requires', () => {
    const records = ['Tenant', 'User', 'Role', 'Policy', 'PolicyRule', 'Device', 'Tower', 'Carrier', 'Alert', 'UsageRecord',
      'Command', 'Plan', 'Webhook', 'AuditRecord', 'ApiKey', 'Error'];
    for (const name of records) {
      const schema = doc.components?.schemas?.[name];
      expect(schema, name).toBeDefined();
      const example = schema?.example;
      expect(isObject(example), `${name} example`).toBe(true);
      if (!schema || !isObject(example)) continue;
      const required = Array.isArray(schema.required) ? schema.required : [];
      for (const key of required) expect(example, `${name}.${String(key)}`).toHaveProperty(String(key));
    }
  });

  it('gives each record schema an example it accepts', () => {
    const schemas: Record<string, z.ZodType> = {
      ...Object.fromEntries(Object.entries(records as Record<string, unknown>).filter((e): e is [string, z.ZodType] => isZod(e[1]))),
      ApiKeySchema,
      AuditRecordSchema,
      ErrorBodySchema,
    };
    const withExample = Object.entries(schemas).filter(([, s]) => s.meta()?.example !== undefined);
    expect(withExample.length).toBeGreaterThanOrEqual(16);
    for (const [name, schema] of withExample) {
      const parsed = schema.safeParse(schema.meta()?.example);
      expect(parsed.success, `${name}: ${JSON.stringify(parsed.error?.issues)}`).toBe(true);
    }
  });
});
