/**
 * Unknown query parameters are refused on every route, naming each one (and the closest accepted
 * name when it looks like a typo). A silently ignored filter is worse than an error: `?devce_id=`
 * would answer every device, and an export would then contain everything.
 *
 * What a route accepts is exactly the keys of its declared querystring schema (none declared:
 * none accepted), so OpenAPI and behaviour cannot disagree. Runs before validation, after the
 * guard: an unauthenticated caller learns nothing about a route's parameters.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { createError, type FieldIssue } from '../shared/errors.js';

const acceptedBySchema = new WeakMap<object, ReadonlySet<string>>();
const NONE: ReadonlySet<string> = new Set();

/** The query keys a route's querystring schema declares. */
export function acceptedQueryKeys(schema: unknown): ReadonlySet<string> {
  if (typeof schema !== 'object' || schema === null) return NONE;
  let keys = acceptedBySchema.get(schema);
  if (keys === undefined) {
    const object = schema instanceof z.ZodObject ? schema : schema instanceof z.ZodPipe && schema.in instanceof z.ZodObject ? schema.in : null;
    keys = new Set(object === null ? [] : Object.keys(object.shape));
    acceptedBySchema.set(schema, keys);
  }
  return keys;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j]!;
      row[j] = Math.min(up + 1, row[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return row[b.length]!;
}

function closest(key: string, accepted: ReadonlySet<string>): string | null {
  let best: string | null = null;
  let bestDistance = Math.max(2, Math.floor(key.length / 4)) + 1;
  for (const candidate of accepted) {
    const d = editDistance(key.toLowerCase(), candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function unknownQueryIssues(request: FastifyRequest): FieldIssue[] {
  const query = request.query;
  if (typeof query !== 'object' || query === null) return [];
  const names = Object.keys(query);
  if (names.length === 0) return [];
  const accepted = acceptedQueryKeys(request.routeOptions.schema?.querystring);
  const list = accepted.size === 0 ? 'this route takes no query parameters' : `accepted: ${[...accepted].sort().join(', ')}`;
  return names
    .filter((name) => !accepted.has(name))
    .map((name) => {
      const hint = closest(name, accepted);
      return { field: `query.${name}`, message: `unknown query parameter${hint ? ` (did you mean '${hint}'?)` : ''}; ${list}` };
    });
}

export function registerStrictQuery(app: FastifyInstance): void {
  app.addHook('preValidation', async (request) => {
    const url = request.routeOptions.url;
    // Unmatched requests are the 404 handler's; the docs UI serves static assets.
    if (url === undefined || url === '/docs' || url.startsWith('/docs/')) return;
    const issues = unknownQueryIssues(request);
    if (issues.length > 0) throw createError('VALIDATION_FAILED', `${issues[0]!.field}: ${issues[0]!.message}`, issues);
  });
}
