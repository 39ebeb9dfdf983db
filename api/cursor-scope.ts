/**
 * List cursors are tied to the list and the tenant that returned them: every `next_cursor` the API
 * answers is prefixed with a tag of (route, path values, caller's tenant), and a `cursor` query value without
 * this route's and tenant's tag is a 400 naming `query.cursor`. Before, a cursor from /users was
 * read as a position in /roles, and tenant A's cursor was honoured for tenant B: nothing leaked
 * (every store read is tenant-scoped), but the client silently got a page from a wrong position.
 *
 * The tag is a plain digest, not a MAC: a cursor carries no authority (the store still scopes every
 * read to the caller's tenant), so a forged tag gains nothing, and no secret has to be shared by
 * every API process or survive key rotation. Unauthenticated routes have no lists.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { invalidField } from './schemas/common.js';

/** Characters of base64url SHA-256 kept: 48 bits, plenty to tell lists apart. */
const TAG_LENGTH = 8;

function tagOf(request: FastifyRequest): string | null {
  const route = request.routeOptions.url;
  if (route === undefined || !request.principal) return null;
  let scope = `${request.method} ${route}\n${request.principal.tenantId ?? 'platform'}`;
  // A list under a path value (`/devices/{id}/usage`) is another list for every value. Routes
  // without one keep the tag they had, so their cursors outlive the upgrade that added this.
  const params = request.params as Record<string, unknown> | undefined;
  if (params) {
    for (const key of Object.keys(params).sort()) scope += `\n${key}=${String(params[key])}`;
  }
  return createHash('sha256').update(scope).digest('base64url').slice(0, TAG_LENGTH);
}

export function registerCursorScope(app: FastifyInstance, opts: { prefix: string }): void {
  // After the guard (the tenant is known), before validation (which then sees the store's cursor).
  app.addHook('preValidation', async (request) => {
    const query = request.query as Record<string, unknown> | undefined;
    const cursor = query?.cursor;
    if (typeof cursor !== 'string' || !request.url.startsWith(opts.prefix)) return;
    // "cursor and page together" is the clearer error: let the route give it.
    if (query?.page !== undefined) return;
    const tag = tagOf(request);
    if (tag === null) return;
    if (!cursor.startsWith(`${tag}.`)) invalidField('query.cursor', 'not a cursor of this list: use the next_cursor this list returned');
    query!.cursor = cursor.slice(TAG_LENGTH + 1);
  });
  app.addHook('preSerialization', async (request, _reply, payload: unknown) => {
    if (typeof payload !== 'object' || payload === null || !request.url.startsWith(opts.prefix)) return payload;
    const next = (payload as { next_cursor?: unknown }).next_cursor;
    const tag = typeof next === 'string' ? tagOf(request) : null;
    return tag === null ? payload : { ...payload, next_cursor: `${tag}.${next as string}` };
  });
}
