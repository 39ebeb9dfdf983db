/**
 * The API's response serializer: every response is checked against its route's zod schema (wrong
 * types are refused, fields the schema does not name never leave), then JSON.stringify'd — as
 * fastify-type-provider-zod's own serializer does, which checks with `safeEncode`, the codec
 * direction. Encoding runs without zod's compiled object parsers: on a 50-row `/app-usage` page
 * encoding took 47 µs where parsing takes 13, and the whole serializer 99.5 µs against 66 µs with
 * parsing (measured with the route's schema on this machine).
 *
 * Parsing and encoding accept the same values and return the same data when the schema reads the
 * same in both directions — no transform, pipe, codec or default: then its input and output JSON
 * Schemas are the same, but for `additionalProperties: false`, which zod writes for the output of
 * every object (parsing and encoding strip unknown keys alike). Such a schema is checked with `safeParse`; any other (or one JSON Schema
 * cannot express) keeps `safeEncode`. Decided on a route's first response, so start-up does not
 * pay for it.
 */
import type { FastifySerializerCompiler } from 'fastify/types/schema.js';
import { ResponseSerializationError } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { $ZodType } from 'zod/v4/core';

type Check = (data: unknown) => { success: true; data: unknown } | { success: false; error: z.ZodError };

function resolveSchema(maybe: unknown): z.ZodType {
  if (maybe instanceof $ZodType) return maybe as z.ZodType;
  if (typeof maybe === 'object' && maybe !== null && 'properties' in maybe && maybe.properties instanceof $ZodType) return maybe.properties as z.ZodType;
  throw new Error(`a response schema that is not a zod schema: ${JSON.stringify(maybe)}`);
}

/** A JSON Schema as text, without `additionalProperties: false` (see above). */
function comparable(jsonSchema: unknown): string {
  return JSON.stringify(jsonSchema, (key, value: unknown) => (key === 'additionalProperties' && value === false ? undefined : value));
}

/** True when parsing and encoding `schema` are the same operation (see above). */
export function readsTheSameBothWays(schema: z.ZodType): boolean {
  try {
    return comparable(z.toJSONSchema(schema, { io: 'input' })) === comparable(z.toJSONSchema(schema, { io: 'output' }));
  } catch {
    // Transforms, dates, custom types: JSON Schema cannot say, so the provider's way it is.
    return false;
  }
}

export function checkFor(schema: z.ZodType): Check {
  return readsTheSameBothWays(schema) ? (data) => schema.safeParse(data) : (data) => z.safeEncode(schema, data as never);
}

export const serializerCompiler: FastifySerializerCompiler<unknown> = ({ schema: maybe, method, url }) => {
  const schema = resolveSchema(maybe);
  let check: Check | null = null;
  return (data) => {
    check ??= checkFor(schema);
    const result = check(data);
    if (!result.success) throw new ResponseSerializationError(method, url, { cause: result.error });
    return JSON.stringify(result.data);
  };
};
