/**
 * The OpenAPI document at /docs/json is a valid OpenAPI document, as third-party consumers (code
 * generators, Postman, Schemathesis) read it: it matches the specification's JSON Schema for its
 * version (@seriousme/openapi-schema-validator, offline), every `$ref` resolves, and the rules that
 * schema cannot express hold. Each failure lists the offending places.
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, startHarness } from './test-support.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

interface Parameter {
  name?: string;
  in?: string;
  required?: boolean;
  $ref?: string;
}
interface MediaType {
  schema?: JsonObject;
}
interface Response {
  $ref?: string;
  content?: Record<string, MediaType>;
}
interface Operation {
  operationId?: string;
  parameters?: Parameter[];
  responses?: Record<string, Response>;
  security?: Record<string, string[]>[];
}
type PathItem = Record<string, Operation> & { parameters?: Parameter[] };
interface OpenApiDoc {
  openapi: string;
  paths: Record<string, PathItem>;
  security?: Record<string, string[]>[];
  components?: { securitySchemes?: Record<string, unknown>; parameters?: Record<string, Parameter> };
}

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/** Success: any 2xx or 3xx, or 101 Switching Protocols (the answer of a WebSocket endpoint). */
const SUCCESS = /^(?:[23](?:\d\d|XX)|101)$/;

/** Keywords whose values are data, not schemas or references. */
const DATA_KEYS = new Set(['example', 'examples', 'default', 'enum']);

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function operations(doc: OpenApiDoc): Array<{ where: string; path: string; item: PathItem; op: Operation }> {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    HTTP_METHODS.filter((m) => isObject(item[m] as unknown as Json)).map((m) => ({
      where: `${m.toUpperCase()} ${path}`,
      path,
      item,
      op: item[m] as Operation,
    })),
  );
}

/** The value a local JSON pointer (`#/a/b~1c`) names, or undefined. */
function resolvePointer(doc: Json, ref: string): Json | undefined {
  if (!ref.startsWith('#')) return undefined;
  const tokens = ref.slice(1).split('/').slice(1).map((t) => decodeURIComponent(t).replace(/~1/g, '/').replace(/~0/g, '~'));
  let node: Json | undefined = doc;
  for (const token of tokens) {
    if (Array.isArray(node)) node = node[Number(token)];
    else if (isObject(node)) node = Object.hasOwn(node, token) ? node[token] : undefined;
    else return undefined;
  }
  return node;
}

/** Every `$ref` of the document, with where it is (a JSON pointer). */
function refsOf(node: Json, at = '#'): Array<{ at: string; ref: string }> {
  if (Array.isArray(node)) return node.flatMap((v, i) => refsOf(v, `${at}/${i}`));
  if (!isObject(node)) return [];
  return Object.entries(node).flatMap(([key, value]) => {
    const here = `${at}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
    if (key === '$ref' && typeof value === 'string') return [{ at, ref: value }];
    return DATA_KEYS.has(key) ? [] : refsOf(value, here);
  });
}

/** Schemas (JSON pointers) where OpenAPI 3.0's `nullable: true` has no `type` to apply to. */
function typelessNullables(node: Json, at = '#'): string[] {
  if (Array.isArray(node)) return node.flatMap((v, i) => typelessNullables(v, `${at}/${i}`));
  if (!isObject(node)) return [];
  const here = node.nullable === true && !('type' in node) && Object.keys(node).some((k) => k !== 'nullable' && k !== 'description') ? [at] : [];
  return [
    ...here,
    ...Object.entries(node).flatMap(([key, value]) =>
      DATA_KEYS.has(key) ? [] : typelessNullables(value, `${at}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`),
    ),
  ];
}

describe('OpenAPI document validity', () => {
  let h: Harness;
  let doc: OpenApiDoc;

  beforeAll(async () => {
    h = await startHarness();
    const res = await h.app.inject({ method: 'GET', url: '/docs/json' });
    expect(res.statusCode).toBe(200);
    doc = res.json<OpenApiDoc>();
  });
  afterAll(() => h.close());

  function parametersOf(item: PathItem, op: Operation): Parameter[] {
    const all = [...(item.parameters ?? []), ...(op.parameters ?? [])];
    return all.map((p) => (p.$ref ? ((resolvePointer(doc as unknown as Json, p.$ref) as Parameter | undefined) ?? p) : p));
  }

  it('matches the OpenAPI specification schema of its version, and every $ref resolves', async () => {
    expect(Validator.supportedVersions.has(doc.openapi.split('.').slice(0, 2).join('.'))).toBe(true);
    const validator = new Validator({ allErrors: true });
    // The validator keeps the object it checks: give it a copy.
    const result = await validator.validate(structuredClone(doc) as unknown as Record<string, unknown>);
    const errors = Array.isArray(result.errors)
      ? [...new Set(result.errors.map((e) => `${e.instancePath || '/'}: ${e.message ?? e.keyword} ${JSON.stringify(e.params)}`))]
      : result.errors === undefined ? [] : [result.errors];
    expect(errors, 'schema errors (instance path: message)').toEqual([]);
    expect(result.valid).toBe(true);
    // Dereferencing succeeds too (the form code generators work on).
    expect(() => validator.resolveRefs()).not.toThrow();
  });

  it('has a validator that refuses a broken copy (so a pass means something)', async () => {
    const broken = structuredClone(doc) as unknown as JsonObject;
    const brokenPaths = broken.paths as JsonObject;
    brokenPaths['/broken'] = { get: { responses: { '200': { description: 'x', content: { 'application/json': { schema: { $ref: '#/components/schemas/Nope' } } } } } } };
    expect((await new Validator().validate(broken)).valid, 'dangling $ref').toBe(false);
    brokenPaths['/broken'] = { get: { responses: { '200': { content: {} } } } };
    expect((await new Validator().validate(broken)).valid, 'response without description').toBe(false);
  });

  it('resolves every $ref inside the document', () => {
    const refs = refsOf(doc as unknown as Json);
    expect(refs.length).toBeGreaterThan(0);
    const dangling = refs.filter(({ ref }) => resolvePointer(doc as unknown as Json, ref) === undefined).map(({ at, ref }) => `${at} → ${ref}`);
    expect(dangling, 'unresolved $ref (where → target)').toEqual([]);
  });

  it('gives every operation a unique operationId (code generators name client methods after them)', () => {
    const seen = new Map<string, string[]>();
    const unnamed: string[] = [];
    for (const { where, op } of operations(doc)) {
      if (op.operationId === undefined) {
        unnamed.push(where);
        continue;
      }
      seen.set(op.operationId, [...(seen.get(op.operationId) ?? []), where]);
    }
    expect(unnamed, 'operations without an operationId').toEqual([]);
    const duplicates = [...seen].filter(([, where]) => where.length > 1).map(([id, where]) => `${id}: ${where.join(', ')}`);
    expect(duplicates, 'operationIds used more than once').toEqual([]);
    expect(doc.paths['/api/v1/roles/{id}']?.['patch']?.operationId).toBe('patchRolesById');
  });

  it('documents the optional If-Match header on every /api/v1 write', () => {
    const missing = operations(doc)
      .filter(({ where }) => /^(PATCH|PUT|DELETE) \/api\/v1\//.test(where))
      .filter(({ item, op }) => !parametersOf(item, op).some((p) => p.in === 'header' && p.name === 'If-Match' && p.required === false))
      .map(({ where }) => where);
    expect(missing, 'writes without an If-Match parameter').toEqual([]);
  });

  it('serves the same document at /openapi.json, where generators and gateways look first, unthrottled', async () => {
    const limited = await startHarness({ rateLimitPerMin: 1 });
    try {
      for (let i = 0; i < 3; i++) {
        const res = await limited.app.inject({ method: 'GET', url: '/openapi.json' });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.headers['content-type']).toMatch(/^application\/json/);
        expect(res.json()).toEqual(doc);
      }
    } finally {
      await limited.close();
    }
  });

  it('declares every path template parameter, required, and no path parameter the template lacks', () => {
    const problems: string[] = [];
    for (const { where, path, item, op } of operations(doc)) {
      const inTemplate = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      const declared = parametersOf(item, op).filter((p) => p.in === 'path');
      for (const name of inTemplate) {
        const param = declared.find((p) => p.name === name);
        if (!param) problems.push(`${where}: {${name}} is not declared`);
        else if (param.required !== true) problems.push(`${where}: {${name}} is not required: true`);
      }
      for (const p of declared) if (!inTemplate.includes(p.name)) problems.push(`${where}: path parameter ${p.name} is not in the template`);
    }
    expect(problems).toEqual([]);
  });

  it('gives every operation a success response (2xx, 3xx, or 101 for a WebSocket)', () => {
    const without = operations(doc)
      .filter(({ op }) => !Object.keys(op.responses ?? {}).some((code) => SUCCESS.test(code)))
      .map(({ where, op }) => `${where} (${Object.keys(op.responses ?? {}).join(', ') || 'no responses'})`);
    expect(without, 'operations without a success response').toEqual([]);
  });

  it('gives every JSON response content a non-empty schema', () => {
    const empty: string[] = [];
    let checked = 0;
    for (const { where, op } of operations(doc)) {
      for (const [code, response] of Object.entries(op.responses ?? {})) {
        const res = response.$ref ? (resolvePointer(doc as unknown as Json, response.$ref) as Response | undefined) : response;
        for (const [type, media] of Object.entries(res?.content ?? {})) {
          if (!/^application\/(?:[\w.+-]+\+)?json/.test(type)) continue;
          checked++;
          const schema = media.schema;
          if (!isObject(schema) || Object.keys(schema).length === 0) empty.push(`${where} ${code} ${type}`);
        }
      }
    }
    expect(checked).toBeGreaterThan(0);
    expect(empty, 'JSON responses whose schema is missing or {}').toEqual([]);
  });

  it('documents the content of every success response that has a body (all but 101, 204, 304)', () => {
    const undocumented: string[] = [];
    for (const { where, op } of operations(doc)) {
      for (const [code, response] of Object.entries(op.responses ?? {})) {
        if (!/^2\d\d$/.test(code) || code === '204') continue;
        const res = response.$ref ? (resolvePointer(doc as unknown as Json, response.$ref) as Response | undefined) : response;
        if (Object.keys(res?.content ?? {}).length === 0) undocumented.push(`${where} ${code}`);
      }
    }
    expect(undocumented, 'success responses without content').toEqual([]);
  });

  it('applies OpenAPI 3.0 `nullable` only where a `type` is defined (3.0.3 Schema Object)', () => {
    if (!doc.openapi.startsWith('3.0')) return;
    expect(typelessNullables(doc as unknown as Json), 'nullable without type (null would be refused)').toEqual([]);
  });

  it('names only declared security schemes', () => {
    const declared = new Set(Object.keys(doc.components?.securitySchemes ?? {}));
    const unknown: string[] = [];
    const check = (where: string, security: Record<string, string[]>[] | undefined) => {
      for (const requirement of security ?? []) for (const name of Object.keys(requirement)) if (!declared.has(name)) unknown.push(`${where}: ${name}`);
    };
    check('(document)', doc.security);
    for (const { where, op } of operations(doc)) check(where, op.security);
    expect(unknown, 'security requirements naming no scheme').toEqual([]);
  });
});
