import { isResponseSerializationError, serializerCompiler as providers } from 'fastify-type-provider-zod';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { UsageRecordSchema } from '../shared/schemas/records.js';
import { readsTheSameBothWays, serializerCompiler } from './response-serializer.js';

const compile = (schema: z.ZodType, compiler: typeof serializerCompiler) =>
  compiler({ schema, method: 'GET', url: '/x', httpStatus: '200' } as Parameters<typeof serializerCompiler>[0]);

/** What a serializer makes of `data`: the JSON, or that it refused. */
function outcome(fn: (data: unknown) => string, data: unknown): string {
  try {
    return fn(data);
  } catch (err) {
    expect(isResponseSerializationError(err), String(err)).toBe(true);
    return 'refused';
  }
}

const usageRow = {
  tenant_id: 't1',
  id: '01M8TR1P6QYDA8XHAYG35GC84W',
  tower_id: 'tower-1',
  batch_id: 'b1',
  device_id: 'dev-1',
  user_id: null,
  app: 'slack',
  action: 'upload_file',
  bytes: 1234,
  ts: 1796109171231,
  received_at: 1796109171231,
  effect: 'deny',
  reason: 'rule',
  rule_id: 'r1',
  policy_id: 'p1',
  policy_version: 3,
  local_effect: null,
  local_policy_version: null,
  disagreement: false,
};

const cases: Array<{ name: string; schema: z.ZodType; data: unknown[] }> = [
  {
    name: 'a usage page',
    schema: z.object({ usage: z.array(UsageRecordSchema), next_cursor: z.string().nullable() }),
    data: [
      { usage: [usageRow, { ...usageRow, id: '01M8TR1P6QYDA8XHAYG35GC84X' }], next_cursor: null },
      // A field the schema does not name never leaves.
      { usage: [{ ...usageRow, password_hash: 'secret' }], next_cursor: 'c', internal: true },
      // Wrong types are refused, not coerced.
      { usage: [{ ...usageRow, bytes: '1234' }], next_cursor: null },
      { usage: [{ ...usageRow, effect: 'maybe' }], next_cursor: null },
      { usage: 'nope', next_cursor: null },
    ],
  },
  {
    name: 'optional, nullable, enum, union and record fields',
    schema: z.object({
      a: z.string().optional(),
      b: z.number().int().nullable(),
      c: z.enum(['x', 'y']),
      d: z.union([z.string(), z.array(z.number())]),
      e: z.record(z.string(), z.boolean()),
    }),
    data: [
      { b: 1, c: 'x', d: 'u', e: { k: true } },
      { a: 'A', b: null, c: 'y', d: [1, 2], e: {} },
      { b: 1.5, c: 'x', d: 'u', e: {} },
      { b: 1, c: 'z', d: 'u', e: {} },
    ],
  },
  {
    name: 'a default (the directions differ: the provider’s way)',
    schema: z.object({ n: z.number().default(7), s: z.string() }),
    data: [{ s: 'a' }, { n: 1, s: 'b' }, { n: 'x', s: 'c' }],
  },
  {
    name: 'a codec (encoded for the wire)',
    schema: z.object({
      at: z.codec(z.iso.datetime(), z.date(), { decode: (s) => new Date(s), encode: (d) => d.toISOString() }),
    }),
    data: [{ at: new Date(Date.UTC(2026, 11, 2)) }, { at: 'not a date' }],
  },
];

describe('response serializer', () => {
  for (const c of cases) {
    it(`gives what fastify-type-provider-zod's serializer gives: ${c.name}`, () => {
      const ours = compile(c.schema, serializerCompiler);
      const theirs = compile(c.schema, providers as typeof serializerCompiler);
      for (const data of c.data) expect(outcome(ours, data), JSON.stringify(data)).toBe(outcome(theirs, data));
    });
  }

  it('checks plain schemas by parsing, and keeps encoding for schemas whose directions differ', () => {
    expect(readsTheSameBothWays(cases[0]!.schema)).toBe(true);
    expect(readsTheSameBothWays(cases[1]!.schema)).toBe(true);
    expect(readsTheSameBothWays(cases[2]!.schema)).toBe(false);
    expect(readsTheSameBothWays(cases[3]!.schema)).toBe(false);
  });

  it('leaves out fields the schema does not name and refuses wrong types', () => {
    const ours = compile(cases[0]!.schema, serializerCompiler);
    const json = ours({ usage: [{ ...usageRow, password_hash: 'secret' }], next_cursor: null, internal: 1 });
    expect(json).not.toContain('secret');
    expect(json).not.toContain('internal');
    expect(JSON.parse(json)).toEqual({ usage: [usageRow], next_cursor: null });
    expect(() => ours({ usage: [{ ...usageRow, ts: 'yesterday' }], next_cursor: null })).toThrow();
  });
});
