/**
 * The document transforms the live conformance check (api/audit-openapi-conformance.test.ts)
 * needed, as units: a nullable enum lists `null` among its values, and every read that answers
 * 200 documents If-None-Match and its 304.
 */
import { describe, expect, it } from 'vitest';
import { documentIfNoneMatch } from './etag.js';
import { nullableForOpenApi30 } from './openapi-nullable.js';

describe('nullableForOpenApi30 on enums', () => {
  it('adds null to the values of a typed nullable enum, once', () => {
    const doc = { openapi: '3.0.3', s: { type: 'string', nullable: true, enum: ['allow', 'deny'] } };
    expect(nullableForOpenApi30(doc).s).toEqual({ type: 'string', nullable: true, enum: ['allow', 'deny', null] });
    expect(nullableForOpenApi30(nullableForOpenApi30(doc)).s.enum).toEqual(['allow', 'deny', null]);
  });

  it('leaves an enum that is not nullable, and the null-only schema, as they are', () => {
    const doc = {
      openapi: '3.0.3',
      a: { type: 'string', enum: ['allow', 'deny'] },
      b: { type: 'object', nullable: true, enum: [null] },
      c: { type: 'object', example: { type: 'string', nullable: true, enum: ['x'] } },
    };
    expect(nullableForOpenApi30(doc)).toEqual(doc);
  });
});

describe('documentIfNoneMatch', () => {
  it('documents the optional If-None-Match header and a bodiless 304 on every GET that answers 200, and on nothing else', () => {
    const doc = {
      paths: {
        '/a': {
          get: { parameters: [{ in: 'query', name: 'limit' }], responses: { '200': { description: 'ok' } } },
          patch: { responses: { '200': { description: 'ok' } } },
        },
        '/ws': { get: { responses: { '101': { description: 'upgrade' } } } },
      },
    };
    const out = documentIfNoneMatch(structuredClone(doc));
    const get = out.paths['/a'].get as { parameters: Array<{ in: string; name: string; required?: boolean }>; responses: Record<string, { description: string; content?: unknown }> };
    expect(get.parameters.map((p) => `${p.in} ${p.name} ${String(p.required)}`)).toEqual(['query limit undefined', 'header If-None-Match false']);
    expect(get.responses['304']?.description).toMatch(/Not Modified/);
    expect(get.responses['304']?.content).toBeUndefined();
    expect(out.paths['/a'].patch).toEqual(doc.paths['/a'].patch);
    expect(out.paths['/ws']).toEqual(doc.paths['/ws']);
  });
});
