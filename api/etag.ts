/**
 * ETags on successful reads. The tag is a hash of the serialized body, so it is the same for any
 * caller who would receive the same bytes and changes whenever the representation does: a strong
 * validator (RFC 9110 §8.8.1), which is what If-Match compares (api/conditional-writes.ts). A
 * matching If-None-Match turns the response into a bodiless 304.
 */
import { hash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { documentOptionalHeader } from './conditional-writes.js';

/** One-shot `crypto.hash` (Node ≥ 20.12): 0.26 µs for a small body where a Hash object took 0.86. */
export function entityTag(payload: string | Buffer): string {
  return `"${hash('sha1', payload, 'base64url')}"`;
}

/** RFC 9110 §13.1.2: If-None-Match uses weak comparison, so a W/ prefix is ignored. */
export function matchesIfNoneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  const opaque = (t: string) => t.trim().replace(/^W\//, '');
  const want = opaque(etag);
  return header.split(',').some((t) => t.trim() === '*' || opaque(t) === want);
}

export function registerEtags(app: FastifyInstance): void {
  app.addHook('onSend', async (request, reply, payload) => {
    if ((request.method !== 'GET' && request.method !== 'HEAD') || reply.statusCode !== 200) return payload;
    if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) return payload;
    const etag = entityTag(payload);
    reply.header('etag', etag);
    if (request.url.startsWith('/api/')) reply.header('cache-control', 'private, no-cache');
    if (matchesIfNoneMatch(request.headers['if-none-match'], etag)) {
      reply.code(304);
      reply.removeHeader('content-length');
      return null;
    }
    return payload;
  });
}

type OpenApiOperation = { parameters?: unknown[]; responses?: Record<string, unknown> };

/**
 * Documents what registerEtags does for every read that answers 200: the optional If-None-Match
 * header and its bodiless 304. Without them a client generated from the document, or a gateway
 * that validates answers, treats a revalidated read as an undocumented status
 * (api/audit-openapi-conformance.test.ts).
 */
export function documentIfNoneMatch<D extends object>(document: D): D {
  const paths = (document as { paths?: Record<string, Record<string, OpenApiOperation | undefined>> }).paths ?? {};
  for (const item of Object.values(paths)) {
    const op = item.get;
    if (!op?.responses?.['200']) continue;
    documentOptionalHeader(op, 'If-None-Match', 'the ETag of an earlier read: 304 Not Modified (no body) while the answer is still the same');
    op.responses['304'] = { description: 'Not Modified: the answer still has the ETag given in If-None-Match (no body)' };
  }
  return document;
}
