/**
 * If-Match on writes (RFC 9110 §13.1.1): a client that read a record (with its ETag) and sends
 * `If-Match: <etag>` with its PATCH, PUT or DELETE gets 412 PRECONDITION_FAILED when the record
 * changed in between, instead of silently overwriting someone else's change (a lost update). The
 * current ETag is the one a GET of the same URL would answer, so the tag a client holds is the
 * tag it compares against; `*` asks only that the resource exists. Without If-Match nothing changes.
 *
 * Check and write are one step: conditional writes to one URL (per tenant) wait for each other,
 * so two writers holding the same ETag cannot both succeed — within a process by a queue, and with
 * Redis (several API processes of a deployment) also by a lock in Redis.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { createError, isEdgeplaneError } from '../shared/errors.js';

const CONDITIONAL: ReadonlySet<string> = new Set(['PATCH', 'PUT', 'DELETE']);

declare module 'fastify' {
  interface FastifyRequest {
    /** Ends this request's turn on its URL; set while a conditional write holds it. */
    releaseConditional: (() => void) | null;
  }
}

interface Turns {
  /** Waits for the key's turn; resolves to the function that ends it. */
  take(key: string): Promise<() => void>;
}

/** One turn at a time per key; waiters queue in arrival order. Entries live only while held. */
class KeyedTurns implements Turns {
  private readonly tails = new Map<string, Promise<void>>();

  async take(key: string): Promise<() => void> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let end!: () => void;
    const mine = new Promise<void>((resolve) => (end = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    await previous;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      end();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
  }
}

/** A lock older than this is taken as its holder's (a process that died holding it). */
const LOCK_HOLD_MS = 30_000;
/** A writer that cannot get the lock within this gets 503 rather than waiting on. */
const LOCK_WAIT_MS = 10_000;
/** Deletes the lock only if it is still the holder's (it may have expired and been taken since). */
const RELEASE_SCRIPT = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/**
 * Turns across API processes: this process's queue first (its own writers wait in order without
 * polling Redis), then a lock in Redis (`SET NX PX`), polled with backoff up to LOCK_WAIT_MS.
 * Redis unreachable: 503, never a write unchecked against the others.
 */
class RedisTurns implements Turns {
  readonly #local = new KeyedTurns();
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  async take(key: string): Promise<() => void> {
    const endLocal = await this.#local.take(key);
    const lock = `${this.prefix}ifmatch:${createHash('sha256').update(key).digest('base64url')}`;
    const token = randomUUID();
    try {
      const deadline = Date.now() + LOCK_WAIT_MS;
      for (let pause = 2; ; pause = Math.min(50, pause * 2)) {
        if ((await this.redis.set(lock, token, 'PX', LOCK_HOLD_MS, 'NX')) === 'OK') break;
        if (Date.now() >= deadline) throw createError('UNAVAILABLE', 'another write to this resource is still in progress; retry');
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
    } catch (err) {
      endLocal();
      if (isEdgeplaneError(err)) throw err;
      throw createError('UNAVAILABLE', 'If-Match could not be checked against the other API processes (Redis unreachable); retry');
    }
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      // The next local writer goes once the lock is gone (or could not be deleted: it expires).
      this.redis.eval(RELEASE_SCRIPT, 1, lock, token).then(endLocal, endLocal);
    };
  }
}

/** RFC 9110 §13.1.1: `*` matches any current representation; otherwise strong comparison. */
export function matchesIfMatch(header: string, etag: string | null): boolean {
  if (etag === null) return false;
  return header.split(',').some((t) => {
    const tag = t.trim();
    return tag === '*' || (!tag.startsWith('W/') && tag === etag);
  });
}

/** The current ETag of `request`'s URL, as the caller would read it (null: nothing to read). */
async function currentEtag(app: FastifyInstance, request: FastifyRequest): Promise<string | null> {
  const { authorization, 'x-api-key': apiKey } = request.headers;
  const res = await app.inject({
    method: 'GET',
    url: request.url.split('?')[0]!,
    headers: { ...(authorization !== undefined && { authorization }), ...(apiKey !== undefined && { 'x-api-key': apiKey }) },
  });
  // Not an answer about the resource (the caller's request budget ran out, the store failed):
  // say so rather than call the precondition false.
  if (res.statusCode === 429) throw createError('RATE_LIMITED', 'too many requests to check If-Match; retry after a while');
  if (res.statusCode >= 500) throw createError('UNAVAILABLE', 'the current version could not be read to check If-Match; retry');
  const etag = res.headers.etag;
  return res.statusCode === 200 && typeof etag === 'string' ? etag : null;
}

export function registerConditionalWrites(app: FastifyInstance, opts: { prefix: string; redis?: { connection: Redis; prefix: string } | null }): void {
  const turns: Turns = opts.redis ? new RedisTurns(opts.redis.connection, opts.redis.prefix) : new KeyedTurns();
  app.decorateRequest('releaseConditional', null);

  // preHandler: the caller is authenticated and the request valid; the handler has not written yet.
  app.addHook('preHandler', async (request) => {
    const header = request.headers['if-match'];
    if (header === undefined || !CONDITIONAL.has(request.method) || !request.url.startsWith(`${opts.prefix}/`)) return;
    const path = request.url.split('?')[0]!;
    request.releaseConditional = await turns.take(`${request.principal?.tenantId ?? 'platform'} ${path}`);
    if (!matchesIfMatch(header, await currentEtag(app, request))) {
      throw createError('PRECONDITION_FAILED', `${path} has changed since the ETag in If-Match was read (or does not exist); read it again`);
    }
  });
  // The turn ends once the answer is decided (the write is done or refused); onResponse as well,
  // for a reply that never passed onSend.
  const release = async (request: FastifyRequest) => {
    request.releaseConditional?.();
    request.releaseConditional = null;
  };
  app.addHook('onSend', async (request, _reply, payload) => {
    await release(request);
    return payload;
  });
  app.addHook('onResponse', release);
}

type OpenApiPaths = Record<string, Record<string, { parameters?: unknown[] } | undefined>>;

/** Adds an optional string header to an OpenAPI operation's parameters (If-Match, If-None-Match). */
export function documentOptionalHeader(op: { parameters?: unknown[] }, name: string, description: string): void {
  op.parameters = [...(op.parameters ?? []), { in: 'header', name, required: false, schema: { type: 'string' }, description }];
}

/** Documents the optional If-Match header on every write under `prefix` (412 is among the 4XX answers). */
export function documentIfMatch<D extends object>(document: D, prefix: string): D {
  const paths = (document as { paths?: OpenApiPaths }).paths ?? {};
  for (const [path, item] of Object.entries(paths)) {
    if (!path.startsWith(`${prefix}/`)) continue;
    for (const method of ['patch', 'put', 'delete']) {
      const op = item[method];
      if (!op) continue;
      documentOptionalHeader(op, 'If-Match', 'the ETag of the last read: 412 PRECONDITION_FAILED if the resource changed since (or `*`: it must exist)');
    }
  }
  return document;
}
