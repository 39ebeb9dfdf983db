/**
 * The audit trail of the API (DESIGN §5): who changed what, when, from where, with the state
 * before and after. One mechanism for every route:
 *
 * - a route declares what it does in its config (`audit: { action, resource_type }`), so even a
 *   call refused before its handler runs (401, 403, 400) is recorded under the right action;
 * - the handler fills `request.audit` (resource id, before, after) through `audit()` or the
 *   `recordCreate/Update/Delete` helpers as it reads and writes the store;
 * - root hooks (onSend for acknowledged changes, else onResponse) write the entry for every
 *   POST/PUT/PATCH/DELETE under the API prefix, successful or refused, plus any other request
 *   whose handler filled `request.audit` (exports). A mutating route that fills nothing still gets a generic entry ('METHOD /pattern').
 *
 * A change the API acknowledges (2xx/3xx to a mutating call) is answered only once its entry is
 * written; refused calls, sign-ins and audited reads are written after the response, and
 * `AuditTrail.flush()` (also run on close) waits for the writes still in flight. Secrets never
 * reach the store: before/after pass through `redactSecrets`, and the generic entry carries no
 * payload at all.
 */
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { sha256 } from '../shared/auth/secrets.js';
import type { AuditActorKind } from '../shared/domain.js';
import type { Counters } from '../shared/metrics.js';
import type { AuditInput, Store } from '../shared/store/port.js';
import type { StoreFaults } from '../shared/store/store-faults.js';
import { existed } from './schemas/common.js';

export interface AuditActor {
  kind: AuditActorKind;
  id: string | null;
  label: string | null;
}

/** What a handler knows about its change; everything else comes from the request. */
export interface AuditDraft {
  action?: string;
  resource_type?: string;
  resource_id?: string | null;
  before?: unknown;
  after?: unknown;
  /** Overrides the caller's scope (sign-in, where there is no principal yet). */
  tenant_id?: string | null;
  actor?: AuditActor;
}

/** Declared per route: the name its entries carry, whatever the outcome. */
export interface AuditRouteConfig {
  action: string;
  resource_type: string;
}

declare module 'fastify' {
  interface FastifyInstance {
    auditTrail: AuditTrail;
  }
  interface FastifyRequest {
    /** Filled by the handler; read by the audit hook after the response. */
    audit: AuditDraft | null;
  }
  interface FastifyContextConfig {
    audit?: AuditRouteConfig;
  }
}

const MUTATING: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const USER_AGENT_MAX = 512;
const LABEL_MAX = 320;

/**
 * Keys whose values are credentials or derived from them. Matched on the key name at any depth,
 * so a record that gains such a field later is still redacted. ('key' alone is a catalogue key
 * like "slack", not a secret.)
 */
const SECRET_KEY_RE =
  /^(password|secret|token|api_key|apikey|private_key|authorization|refresh_token|access_token)$|_(password|secret|hash|token)$/i;
export const REDACTED = '[redacted]';

/** A JSON copy of `value` with every secret-named field replaced; null when it is not JSON. */
export function redactSecrets(value: unknown): unknown {
  if (value === undefined || value === null) return null;
  try {
    const text = JSON.stringify(value, (key, v: unknown) => (key !== '' && SECRET_KEY_RE.test(key) ? REDACTED : v));
    return text === undefined ? null : (JSON.parse(text) as unknown);
  } catch {
    return null;
  }
}

/** Merges what the handler learnt into the request's draft entry. */
export function audit(request: FastifyRequest, draft: AuditDraft): void {
  request.audit = { ...request.audit, ...draft };
}

/** POST: the created record is the after state. */
export async function recordCreate<T extends { id: string }>(request: FastifyRequest, create: () => Promise<T>): Promise<T> {
  const created = await create();
  audit(request, { resource_id: created.id, after: created });
  return created;
}

/**
 * PATCH: reads the record before changing it. The read and the write are not one transaction; a
 * concurrent change between them shows as a before that another entry's after also claims.
 */
export async function recordUpdate<T>(
  request: FastifyRequest,
  id: string,
  read: () => Promise<T | null>,
  update: () => Promise<T | null>,
): Promise<T | null> {
  audit(request, { resource_id: id, before: await read() });
  const after = await update();
  audit(request, { after });
  return after;
}

/** DELETE: the record as it was is the before state; after stays null. */
export async function recordDelete<T>(
  request: FastifyRequest,
  id: string,
  read: () => Promise<T | null>,
  remove: () => Promise<boolean>,
): Promise<boolean> {
  audit(request, { resource_id: id, before: await read() });
  return remove();
}

/** A tenant's record: what recordDelete reads before removing it. */
interface TenantRecords {
  get(tenantId: string, id: string): Promise<unknown>;
  delete(tenantId: string, id: string): Promise<boolean>;
}

/** Deletes one of the tenant's records, auditing what it was; NOT_FOUND (`what`) when there was none. */
export async function deleteTenantRecord(request: FastifyRequest, records: TenantRecords, tenantId: string, id: string, what: string): Promise<void> {
  existed(
    await recordDelete(
      request,
      id,
      () => records.get(tenantId, id),
      () => records.delete(tenantId, id),
    ),
    what,
  );
}

/** Writes entries off the request path and remembers the ones in flight. */
export class AuditTrail {
  readonly #store: Store;
  readonly #log: FastifyBaseLogger;
  readonly #counters: Counters;
  readonly #faults: StoreFaults | null;
  readonly #pending = new Set<Promise<void>>();

  constructor(deps: { store: Store; log: FastifyBaseLogger; counters: Counters; storeFaults?: StoreFaults }) {
    this.#store = deps.store;
    this.#log = deps.log;
    this.#counters = deps.counters;
    this.#faults = deps.storeFaults ?? null;
  }

  /**
   * Starts writing `build()`'s entries; failures are logged and counted, never thrown. The
   * promise settles once they are written (or failed), and never rejects.
   */
  write(build: () => Promise<AuditInput | AuditInput[]>): Promise<void> {
    const p: Promise<void> = build()
      .then(async (input) => {
        for (const entry of Array.isArray(input) ? input : [input]) {
          await this.#store.audit.record(entry);
          this.#counters.inc('audit_records_total');
          // A record was written: the store has space (again).
          this.#faults?.writable();
        }
      })
      .then(
        () => undefined,
        (err: unknown) => {
          this.#counters.inc('audit_write_errors_total');
          // A full store refuses every request's record: counted, logged once per episode.
          if (this.#faults?.refused(err, 'audit')) return;
          this.#log.error({ err }, 'audit record could not be written');
        },
      )
      .finally(() => this.#pending.delete(p));
    this.#pending.add(p);
    return p;
  }

  /** Resolves once every entry started so far is written (or failed). */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }
}

interface Caller {
  actor: AuditActor;
  tenantId: string | null;
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v !== '' ? v : null;
}

function field(o: unknown, key: string): unknown {
  return typeof o === 'object' && o !== null ? (o as Record<string, unknown>)[key] : undefined;
}

/**
 * Reads the principal without assuming its exact shape (console users and API keys; more kinds
 * may come): an unknown shape is recorded as an anonymous caller rather than failing the entry.
 */
async function callerOf(store: Store, principal: unknown): Promise<Caller | null> {
  const tenantId = str(field(principal, 'tenantId'));
  const kind = field(principal, 'kind');
  const keyId = str(field(principal, 'keyId'));
  if (kind === 'api_key' || keyId !== null) {
    return {
      tenantId,
      actor: { kind: 'api_key', id: keyId ?? str(field(principal, 'actorId')), label: str(field(principal, 'label')) },
    };
  }
  if (kind === 'carrier') {
    // Carriers are platform principals; the audit vocabulary predates them, so they are recorded
    // as 'system' actors with the id `carrier:<id>` (platform records, operators read them).
    return { tenantId: null, actor: { kind: 'system', id: str(field(principal, 'actorId')), label: str(field(principal, 'label')) } };
  }
  const userId = str(field(principal, 'userId'));
  if (userId !== null) {
    // The token carries no e-mail; the label is the account's e-mail as it is now.
    const user = await store.consoleUsers.get(userId);
    return { tenantId, actor: { kind: 'console_user', id: userId, label: user?.email ?? null } };
  }
  return null;
}

const BEARER_RE = /^Bearer\s+(\S+)\s*$/i;

/** The credential a request presented (Authorization bearer, else x-api-key), if any. */
function presentedCredential(request: FastifyRequest): string | null {
  const bearer = BEARER_RE.exec(request.headers.authorization ?? '')?.[1];
  if (bearer !== undefined) return bearer;
  const key = request.headers['x-api-key'];
  return typeof key === 'string' && key.trim() !== '' ? key.trim() : null;
}

/**
 * The guard sets the principal only once the caller is allowed, so a refused call (403, or a
 * revoked key) carries none. Who it was is still worth knowing: the credential is identified
 * again here, after the response. A token that does not verify, or a key no tenant holds, leaves
 * the caller anonymous; a revoked or expired key still names itself.
 */
async function refusedCaller(app: FastifyInstance, credential: string): Promise<Caller | null> {
  try {
    const claims = await app.tokens.verify(credential);
    const user = await app.store.consoleUsers.get(claims.sub);
    return { tenantId: claims.tenant_id, actor: { kind: 'console_user', id: claims.sub, label: user?.email ?? null } };
  } catch {
    // Not an access token: perhaps an API key (stored as the SHA-256 of the whole key).
  }
  const key = await app.store.apiKeys.findByHash(sha256(credential));
  return key ? { tenantId: key.tenant_id, actor: { kind: 'api_key', id: key.id, label: key.name } } : null;
}

const ANONYMOUS: Caller = { tenantId: null, actor: { kind: 'console_user', id: null, label: null } };

/** `/api/v1/devices/:id` → 'devices'. */
function firstSegment(routeUrl: string, prefix: string): string {
  return routeUrl.slice(prefix.length).split('/').find((s) => s !== '') ?? 'api';
}

/**
 * Sign-in routes are public: there is no principal, and their bodies hold a password or a token.
 * The actor is found from the e-mail or the refresh token's record (after the response, so the
 * lookup cannot change the sign-in's timing); only the e-mail is recorded, as the label. A
 * successful sign-in names its account itself (the route's draft). A failed one was checked
 * against every account of the e-mail (one per tenant at most), or only the one of the tenant it
 * named, so it is recorded in each of their tenants, and on the platform's trail when there is none.
 */
async function authCallers(store: Store, action: string, body: unknown): Promise<Caller[]> {
  if (action === 'auth.login') {
    const email = str(field(body, 'email'))?.slice(0, LABEL_MAX) ?? null;
    if (email === null) return [];
    // A sign-in naming its tenant (`tenant_id`, null for operators) was checked against that
    // scope's account only: no other tenant holding the e-mail may read of it in its trail.
    const scope = field(body, 'tenant_id');
    const users = (await store.consoleUsers.findAllByEmail(email)).filter((u) => scope === undefined || u.tenant_id === scope);
    if (users.length === 0) return [{ tenantId: null, actor: { kind: 'console_user', id: null, label: email } }];
    return users.map((user) => ({ tenantId: user.tenant_id, actor: { kind: 'console_user', id: user.id, label: email } }));
  }
  const token = str(field(body, 'refresh_token'));
  if (token === null) return [];
  const rec = await store.refreshTokens.findByHash(sha256(token));
  const user = rec ? await store.consoleUsers.get(rec.user_id) : null;
  if (!user) return [];
  return [{ tenantId: user.tenant_id, actor: { kind: 'console_user', id: user.id, label: user.email } }];
}

/** The sign-in routes (api/auth/routes.ts), by path under the prefix. */
const AUTH_ROUTES: ReadonlyMap<string, AuditRouteConfig> = new Map([
  ['/auth/login', { action: 'auth.login', resource_type: 'console_user' }],
  ['/auth/refresh', { action: 'auth.refresh', resource_type: 'console_user' }],
  ['/auth/logout', { action: 'auth.logout', resource_type: 'console_user' }],
]);

function entryFor(
  app: FastifyInstance,
  prefix: string,
  request: FastifyRequest,
  reply: FastifyReply,
): () => Promise<AuditInput[]> {
  // Everything request-bound is read now; only store lookups happen later.
  const routeUrl = request.routeOptions.url ?? request.url;
  const authRoute = AUTH_ROUTES.get(routeUrl.slice(prefix.length));
  const declared = request.routeOptions.config.audit ?? authRoute;
  const draft = request.audit ?? {};
  const status = reply.statusCode;
  const action = draft.action ?? declared?.action ?? `${request.method} ${routeUrl}`;
  const principal: unknown = request.principal;
  const credential = principal === null ? presentedCredential(request) : null;
  const body: unknown = request.body;
  const paramsId = str(field(request.params, 'id'));
  const userAgent = request.headers['user-agent'];
  const at = app.clock();
  const base = {
    action,
    resource_type: draft.resource_type ?? declared?.resource_type ?? firstSegment(routeUrl, prefix),
    resource_id: draft.resource_id !== undefined ? draft.resource_id : paramsId,
    method: request.method,
    path: request.url.split('?')[0] ?? request.url,
    status_code: status,
    ip: request.ip ?? null,
    user_agent: typeof userAgent === 'string' ? userAgent.slice(0, USER_AGENT_MAX) : null,
    before: redactSecrets(draft.before),
    // A refused call changed nothing, whatever the handler had prepared.
    after: status < 400 ? redactSecrets(draft.after) : null,
    at,
  };
  return async () => {
    const fromAuth = draft.actor === undefined && authRoute && principal === null ? await authCallers(app.store, authRoute.action, body) : [];
    const callers =
      fromAuth.length > 0
        ? fromAuth
        : [
            (await callerOf(app.store, principal)) ??
              (credential !== null ? await refusedCaller(app, credential) : null) ??
              ANONYMOUS,
          ];
    return callers.map((caller) => {
      const actor = draft.actor ?? caller.actor;
      return {
        ...base,
        // A sign-in acts on the account itself.
        resource_id: base.resource_id ?? (authRoute ? actor.id : null),
        tenant_id: draft.tenant_id !== undefined ? draft.tenant_id : caller.tenantId,
        actor_kind: actor.kind,
        actor_id: actor.id,
        actor_label: actor.label?.slice(0, LABEL_MAX) ?? null,
      };
    });
  };
}

/**
 * Registers the trail on the root instance, before the routes. 429s are not recorded: a flood of
 * throttled calls would otherwise turn into a flood of audit rows (the rate limiter counts them).
 */
export function registerAuditTrail(app: FastifyInstance, opts: { prefix: string }): void {
  const trail = new AuditTrail({ store: app.store, log: app.log, counters: app.counters, storeFaults: app.storeFaults });
  app.decorate('auditTrail', trail);
  app.decorateRequest('audit', null);
  const audited = (request: FastifyRequest, reply: FastifyReply): boolean => {
    const routeUrl = request.routeOptions.url;
    if (routeUrl === undefined || !routeUrl.startsWith(`${opts.prefix}/`)) return false;
    if (!MUTATING.has(request.method) && request.audit === null) return false;
    return reply.statusCode !== 429;
  };
  // A change the API acknowledges (a 2xx/3xx to a POST/PUT/PATCH/DELETE) is answered only once its
  // audit entry is written too, so a crash after the answer cannot lose the entry of a change the
  // client was told about. Sign-ins stay after the response (the account lookup must not change
  // their timing), as do refused calls (they changed nothing) and audited reads (exports).
  const writtenBeforeAnswer = new WeakSet<FastifyRequest>();
  app.addHook('onSend', async (request, reply, payload) => {
    if (reply.statusCode >= 400 || !MUTATING.has(request.method) || !audited(request, reply)) return payload;
    if (AUTH_ROUTES.has((request.routeOptions.url ?? '').slice(opts.prefix.length))) return payload;
    writtenBeforeAnswer.add(request);
    await trail.write(entryFor(app, opts.prefix, request, reply));
    return payload;
  });
  app.addHook('onResponse', async (request, reply) => {
    if (writtenBeforeAnswer.has(request) || !audited(request, reply)) return;
    void trail.write(entryFor(app, opts.prefix, request, reply));
  });
  app.addHook('onClose', async () => trail.flush());
}
