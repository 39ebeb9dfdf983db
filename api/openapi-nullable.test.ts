import { describe, expect, it } from 'vitest';
import { nullableForOpenApi30 } from './openapi-nullable.js';

const NULL_ONLY = { type: 'object', nullable: true, enum: [null] };

describe('nullableForOpenApi30', () => {
  it('turns a type-less nullable reference into anyOf [reference, null], keeping its annotations outside', () => {
    const doc = {
      openapi: '3.0.3',
      components: { schemas: { R: { type: 'object', properties: { x: { nullable: true, description: 'd', allOf: [{ $ref: '#/components/schemas/S' }] } } } } },
    };
    expect(nullableForOpenApi30(doc).components.schemas.R.properties.x).toEqual({
      description: 'd',
      anyOf: [{ $ref: '#/components/schemas/S' }, NULL_ONLY],
    });
  });

  it('keeps other constraints together in the non-null branch', () => {
    const doc = { openapi: '3.0.3', s: { nullable: true, oneOf: [{ type: 'string' }, { type: 'integer' }] } };
    expect(nullableForOpenApi30(doc).s).toEqual({ anyOf: [{ oneOf: [{ type: 'string' }, { type: 'integer' }] }, NULL_ONLY] });
  });

  it('leaves typed nullables, bare { nullable: true }, example data and 3.1 documents alone', () => {
    const doc = {
      openapi: '3.0.3',
      a: { type: 'string', nullable: true },
      b: { nullable: true },
      c: { type: 'object', example: { nullable: true, allOf: [1] } },
    };
    expect(nullableForOpenApi30(doc)).toEqual(doc);
    const v31 = { openapi: '3.1.0', s: { nullable: true, allOf: [{ $ref: '#/x' }] } };
    expect(nullableForOpenApi30(v31)).toBe(v31);
  });
});
