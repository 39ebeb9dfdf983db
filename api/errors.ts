/**
 * The one error handler. Every failure leaves as `{ error: { code, message, issues? } }` with the
 * status the shared error registry assigns to the code. Client mistakes (validation, bad JSON,
 * wrong media type, oversized body) are 4xx; a full store is 503 UNAVAILABLE naming the storage;
 * only our own faults are 500, and their details go to the log, never to the client.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { ERROR_CODES, isEdgeplaneError, type EdgeplaneError, type ErrorCode, type FieldIssue } from '../shared/errors.js';
import { STORE_BUSY_MESSAGE, STORE_FULL_MESSAGE, STORE_UNREACHABLE_MESSAGE } from '../shared/store/store-faults.js';

export interface ErrorBody {
  error: { code: string; message: string; issues?: FieldIssue[] };
}

function body(code: string, message: string, issues?: FieldIssue[]): ErrorBody {
  return { error: issues && issues.length > 0 ? { code, message, issues } : { code, message } };
}

/** Fastify calls the query string "querystring"; clients know it as the query. */
function contextName(ctx: string | undefined): string {
  return ctx === 'querystring' ? 'query' : (ctx ?? 'body');
}

function validationIssues(err: FastifyError): FieldIssue[] {
  const prefix = contextName(err.validationContext);
  const issues: FieldIssue[] = [];
  for (const v of err.validation ?? []) {
    const path = v.instancePath.replace(/^\//, '').split('/').filter(Boolean).join('.');
    const base = path ? `${prefix}.${path}` : prefix;
    // A strict object reports unknown keys once at the parent; name each key instead.
    const keys = (v.params as { keys?: unknown }).keys;
    if (v.keyword === 'unrecognized_keys' && Array.isArray(keys)) {
      for (const k of keys) issues.push({ field: `${base}.${String(k)}`, message: 'unknown field' });
    } else {
      issues.push({ field: base, message: v.message ?? 'invalid value' });
    }
  }
  return issues;
}

/**
 * The store names a bad field bare (`role_id`, `cursor`); say where in the request it was, in the
 * issues and in a message that starts with the field.
 */
function locate(request: FastifyRequest, err: EdgeplaneError): { message: string; issues: FieldIssue[] | undefined } {
  if (!err.issues) return { message: err.message, issues: undefined };
  const has = (o: unknown, k: string) => typeof o === 'object' && o !== null && Object.hasOwn(o, k);
  let message = err.message;
  const issues = err.issues.map((i) => {
    if (/^(body|query|params|headers)(\.|$)/.test(i.field)) return i;
    const top = i.field.split('.')[0]!;
    const where = has(request.params, top) ? 'params' : has(request.query, top) ? 'query' : 'body';
    const field = `${where}.${i.field}`;
    if (message.startsWith(`${i.field}:`)) message = `${field}${message.slice(i.field.length)}`;
    return { ...i, field };
  });
  return { message, issues };
}

const STATUS_CODES: Partial<Record<number, ErrorCode>> = {
  401: 'UNAUTHENTICATED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  429: 'RATE_LIMITED',
};

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler(async (err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    if (hasZodFastifySchemaValidationErrors(err)) {
      const issues = validationIssues(err);
      const first = issues[0];
      const message = first ? `${first.field}: ${first.message}` : 'request is invalid';
      return reply.code(400).send(body('VALIDATION_FAILED', message, issues));
    }
    // Not a fault of ours or the client's: the disk (or the database's size limit) is full,
    // another process held the store's write lock past the busy timeout, or the database does not
    // answer (MongoDB unreachable, or a failover without a primary yet). The failing write was
    // rolled back; the refusal is counted and logged once per episode.
    const fault = app.storeFaults.refused(err, 'api');
    if (fault === 'full') return reply.code(ERROR_CODES.UNAVAILABLE).send(body('UNAVAILABLE', STORE_FULL_MESSAGE));
    if (fault === 'busy') return reply.code(ERROR_CODES.UNAVAILABLE).header('retry-after', '1').send(body('UNAVAILABLE', STORE_BUSY_MESSAGE));
    if (fault === 'unreachable') return reply.code(ERROR_CODES.UNAVAILABLE).header('retry-after', '5').send(body('UNAVAILABLE', STORE_UNREACHABLE_MESSAGE));
    if (isEdgeplaneError(err)) {
      if (err.status >= 500) request.log.error({ err }, 'request failed');
      const { message, issues } = locate(request, err);
      return reply.code(err.status).send(body(err.code, message, issues));
    }
    const status = typeof err.statusCode === 'number' ? err.statusCode : 500;
    if (status >= 400 && status < 500) {
      // Fastify's own client errors (bad JSON, unsupported media type, body too large…); there is
      // no registry code for e.g. 415, so the status stays Fastify's and the code says BAD_REQUEST.
      const code = STATUS_CODES[status] ?? 'BAD_REQUEST';
      return reply.code(status).send(body(code, err.message));
    }
    request.log.error({ err }, 'request failed');
    return reply.code(ERROR_CODES.INTERNAL).send(body('INTERNAL', 'internal server error'));
  });

  app.setNotFoundHandler(async (request, reply) =>
    reply.code(404).send(body('NOT_FOUND', `route ${request.method} ${request.url.split('?')[0]} not found`)),
  );
}
