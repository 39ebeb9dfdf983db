/**
 * Single-use download links for console exports (api/routes/download-tokens.ts): issued for one
 * exact export of the signed-in user, redeemed once (also when two redemptions race, on one API
 * process or on two sharing Redis), refused once expired, bound to the tenant and the account as
 * it was (a role change ends the link), never in the request log or the audit trail, and the
 * export streamed with the checks of a header-authenticated export. Every redemption here carries
 * the link's cookie, as the browser that asked for it would (binding: audit-download-binding.test.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KeyRing } from '../shared/auth/tokens.js';
import { createRedis } from '../shared/redis/connection.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { describeWithRedis, uniquePrefix } from '../test/support/redis.js';
import { DOWNLOAD_TOKEN_TTL_MS, InProcessDownloadTokens, RedisDownloadTokens, redactDownloadToken, type DownloadTokenStore } from './download-tokens.js';
import { seedUsage } from './seed-usage.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, json, login, requestLogCapture, startHarness, type Harness, type Session } from './test-support.js';

const USAGE_ROWS = 2500;

interface Link {
  url: string;
  expires_at: number;
}

/** The browser's cookie jar: each link's binding cookie (`name=value`) as its POST set it. */
const jar = new Map<string, string>();

async function issue(h: Harness, session: { headers: Record<string, string> }, body: object) {
  return h.app.inject({ method: 'POST', url: '/api/v1/downloads', headers: session.headers, payload: body });
}

async function link(h: Harness, session: Session, body: object): Promise<Link> {
  const res = await issue(h, session, body);
  expect(res.statusCode, res.body).toBe(201);
  const issued = json<Link>(res);
  jar.set(issued.url, String(res.headers['set-cookie']).split(';')[0]!);
  return issued;
}

/** Opens `url` as the browser that asked for it would: with the link's cookie. */
const withCookie = (url: string): Record<string, string> => ({ cookie: jar.get(url) ?? '' });
const redeem = (h: Harness, url: string, headers: Record<string, string> = {}) => h.app.inject({ method: 'GET', url, headers: { ...withCookie(url), ...headers } });

/** CSV data lines (header excluded). */
const dataLines = (csv: string) => csv.split('\r\n').filter((l) => l !== '').slice(1);

describe('download links on one API process', () => {
  let h: Harness;
  let operator: Session;
  let ownerA: Session;
  let ownerB: Session;
  let tenantA: string;
  const { lines, beforeReady } = requestLogCapture();

  beforeAll(async () => {
    h = await startHarness({ rateLimitPerMin: 1_000_000, beforeReady });
    operator = await login(h.app, OPERATOR_EMAIL);
    ({ owner: ownerA, tenantId: tenantA } = await createTenant(h.app, operator, 'Alpha'));
    let tenantB: string;
    ({ owner: ownerB, tenantId: tenantB } = await createTenant(h.app, operator, 'Beta'));
    const events = Array.from({ length: USAGE_ROWS }, (_, i) => ({ device_id: `dev-a-${i}`, app: 'slack', action: 'upload_file', effect: 'allow' as const }));
    for (let i = 0; i < events.length; i += 500) await seedUsage(h.store, tenantA, 'twr-1', events.slice(i, i + 500), h.clock.now);
    await seedUsage(h.store, tenantB, 'twr-9', [{ device_id: 'dev-b-only', app: 'b-only-app', action: 'x', effect: 'deny' }], h.clock.now);
  });
  afterAll(async () => {
    await h?.close();
  });

  it('streams the bound export once, as an attachment, every page of it; a second redemption is refused', async () => {
    const { url, expires_at } = await link(h, ownerA, { path: '/api/v1/app-usage', query: { effect: 'allow' }, format: 'csv' });
    expect(url).toMatch(/^\/api\/v1\/downloads\/epd_[A-Za-z0-9_-]{43}$/);
    // Nothing of the export request shows in the link.
    expect(url).not.toMatch(/usage|effect|csv/);
    expect(expires_at).toBe(h.clock.now + DOWNLOAD_TOKEN_TTL_MS);

    const first = await redeem(h, url);
    expect(first.statusCode, first.body).toBe(200);
    expect(first.headers['content-type']).toMatch(/^text\/csv/);
    expect(first.headers['content-disposition']).toMatch(/^attachment; filename="app-usage-\d{8}T\d{6}Z\.csv"$/);
    expect(first.headers['cache-control']).toBe('no-store');
    const rows = dataLines(first.body);
    expect(rows).toHaveLength(USAGE_ROWS);
    expect(first.body).not.toContain('dev-b-only');

    const second = await redeem(h, url);
    expect(second.statusCode).toBe(404);
    expect(json<{ error: { code: string } }>(second).error.code).toBe('NOT_FOUND');
  });

  it('of two redemptions racing over real HTTP, exactly one gets the export', async () => {
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = h.app.server.address() as AddressInfo;
    for (let round = 0; round < 5; round++) {
      const { url } = await link(h, ownerA, { path: '/api/v1/app-usage', format: 'json' });
      const answers = await Promise.all([0, 1].map(() => fetch(`http://127.0.0.1:${port}${url}`, { headers: withCookie(url) })));
      const bodies = await Promise.all(answers.map((r) => r.text()));
      expect(answers.map((r) => r.status).sort()).toEqual([200, 404]);
      const ok = bodies[answers.findIndex((r) => r.status === 200)]!;
      expect((JSON.parse(ok) as { usage: unknown[] }).usage).toHaveLength(USAGE_ROWS);
    }
  });

  it('refuses a link past its lifetime (injected clock), and a HEAD does not spend one', async () => {
    const { url } = await link(h, ownerA, { path: '/api/v1/app-usage', format: 'csv' });
    expect((await h.app.inject({ method: 'HEAD', url })).statusCode).toBe(404);
    h.clock.advance(DOWNLOAD_TOKEN_TTL_MS - 1);
    const stillValid = await link(h, ownerA, { path: '/api/v1/app-usage', format: 'csv' });
    expect((await redeem(h, url)).statusCode).toBe(200);
    h.clock.advance(DOWNLOAD_TOKEN_TTL_MS);
    expect((await redeem(h, stillValid.url)).statusCode).toBe(404);
  });

  it("is bound to the issuer's tenant: another tenant's bearer, extra parameters or another path change nothing", async () => {
    const fromA = await link(h, ownerA, { path: '/api/v1/app-usage', format: 'csv' });
    // Redeemed by a browser signed in to tenant B: still A's export, never B's rows.
    const res = await redeem(h, fromA.url, ownerB.headers);
    expect(res.statusCode).toBe(200);
    expect(dataLines(res.body)).toHaveLength(USAGE_ROWS);
    expect(res.body).not.toContain('dev-b-only');

    const fromB = await link(h, ownerB, { path: '/api/v1/app-usage', format: 'csv' });
    // A query added to the link is refused before the token is looked at (and does not spend it).
    const widened = await redeem(h, `${fromB.url}?tenant_id=${tenantA}`);
    expect(widened.statusCode).toBe(400);
    const own = await redeem(h, fromB.url);
    expect(dataLines(own.body)).toEqual([expect.stringContaining('dev-b-only')]);

    // A token is only ever redeemed under /downloads: presented as a bearer, it is no credential.
    const another = await link(h, ownerA, { path: '/api/v1/app-usage', format: 'csv' });
    const token = another.url.split('/').pop()!;
    expect((await h.app.inject({ method: 'GET', url: '/api/v1/app-usage', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(401);
  });

  it('checks the export at issue: an export route, known and valid parameters, the permission, a console user', async () => {
    const refused = async (session: { headers: Record<string, string> }, body: object, status: number) => {
      const res = await issue(h, session, body);
      expect(res.statusCode, res.body).toBe(status);
      return json<{ error: { code: string; message: string } }>(res).error;
    };
    expect((await refused(ownerA, { path: '/api/v1/devices', format: 'csv' }, 400)).message).toContain('not a list the API exports');
    expect((await refused(ownerA, { path: '/api/v1/downloads', format: 'csv' }, 400)).message).toContain('not a list the API exports');
    expect((await refused(ownerA, { path: '/api/v1/app-usage', query: { devce_id: 'x' }, format: 'csv' }, 400)).message).toContain('body.query.devce_id');
    expect((await refused(ownerA, { path: '/api/v1/app-usage', query: { effect: 'maybe' }, format: 'csv' }, 400)).message).toContain('body.query.effect');
    expect((await refused(ownerA, { path: '/api/v1/app-usage', format: 'pdf' }, 400)).code).toBe('VALIDATION_FAILED');
    // Operators hold no tenant-data permission; an analyst does not read the audit trail.
    expect((await refused(operator, { path: '/api/v1/app-usage', format: 'csv' }, 403)).code).toBe('FORBIDDEN');
    const analyst = await consoleUser(ownerA, 'analyst-issue@alpha.test', 'analyst');
    expect((await refused(analyst.session, { path: '/api/v1/audit', format: 'csv' }, 403)).message).toContain("lacks permission 'audit:read'");
    // An API key streams exports itself; it gets no link.
    const key = await h.app.inject({ method: 'POST', url: '/api/v1/api-keys', headers: ownerA.headers, payload: { name: 'k', scopes: ['usage:read', 'session:read'] } });
    expect(key.statusCode, key.body).toBe(201);
    const secret = json<{ key: string }>(key).key;
    expect((await refused({ headers: { authorization: `Bearer ${secret}` } }, { path: '/api/v1/app-usage', format: 'csv' }, 403)).message).toContain('console user');
  });

  async function consoleUser(by: Session, email: string, role: string): Promise<{ id: string; session: Session }> {
    const res = await h.app.inject({ method: 'POST', url: '/api/v1/console-users', headers: by.headers, payload: { email, password: PASSWORD, console_role: role } });
    expect(res.statusCode, res.body).toBe(201);
    return { id: json<{ user: { id: string } }>(res).user.id, session: await login(h.app, email) };
  }

  it("re-checks the account at redemption: a role change or disable since issue ends the link", async () => {
    const admin = await consoleUser(ownerA, 'admin-demoted@alpha.test', 'admin');
    const before = await link(h, admin.session, { path: '/api/v1/audit', format: 'csv' });
    const patch = await h.app.inject({ method: 'PATCH', url: `/api/v1/console-users/${admin.id}`, headers: ownerA.headers, payload: { console_role: 'analyst' } });
    expect(patch.statusCode, patch.body).toBe(200);
    const demoted = await redeem(h, before.url);
    expect(demoted.statusCode).toBe(401);
    expect(demoted.body).not.toContain('actor_id');

    const other = await consoleUser(ownerA, 'admin-disabled@alpha.test', 'admin');
    const issued = await link(h, other.session, { path: '/api/v1/app-usage', format: 'csv' });
    await h.app.inject({ method: 'PATCH', url: `/api/v1/console-users/${other.id}`, headers: ownerA.headers, payload: { disabled: true } });
    expect((await redeem(h, issued.url)).statusCode).toBe(401);
  });

  it('audits the export as the account that asked for it, and puts the token in no log line or audit record', async () => {
    lines.length = 0;
    const { url } = await link(h, ownerA, { path: '/api/v1/app-usage', query: { app: 'slack' }, format: 'xml' });
    const token = url.split('/').pop()!;
    expect((await redeem(h, url)).statusCode).toBe(200);
    expect((await redeem(h, url)).statusCode).toBe(404);
    expect((await h.app.inject({ method: 'GET', url: url.toUpperCase(), headers: withCookie(url) })).statusCode).toBe(404);
    await h.app.auditTrail.flush();
    const logged = lines.join('');
    expect(logged).toContain('request completed');
    expect(logged).not.toContain(token);
    expect(logged.toLowerCase()).not.toContain(token.toLowerCase());
    expect(logged).toContain('/api/v1/downloads/[redacted]');
    expect(logged).toContain('/api/v1/app-usage?app=slack&format=xml');

    const trail = await h.app.inject({ method: 'GET', url: '/api/v1/audit?format=json', headers: ownerA.headers });
    expect(trail.body).not.toContain(token);
    const records = json<{ audit: Array<{ action: string; actor_id: string | null; after: unknown }> }>(trail).audit;
    const ownerId = json<{ user: { id: string } }>(await h.app.inject({ method: 'GET', url: '/api/v1/me', headers: ownerA.headers })).user.id;
    expect(records.find((r) => r.action === 'app-usage.export' && JSON.stringify(r.after).includes('"xml"'))).toMatchObject({ actor_id: ownerId });
    expect(records.find((r) => r.action === 'exports.link')).toMatchObject({ actor_id: ownerId });
  });

  it('redactDownloadToken hides the path after /downloads/ in any case and leaves other URLs alone', () => {
    expect(redactDownloadToken('/api/v1/downloads/epd_abc')).toBe('/api/v1/downloads/[redacted]');
    expect(redactDownloadToken('/API/V1/DOWNLOADS/epd_abc?x=1')).toBe('/API/V1/DOWNLOADS/[redacted]?x=1');
    expect(redactDownloadToken('//api/v1/downloads/epd_abc/more')).toBe('//api/v1/downloads/[redacted]');
    expect(redactDownloadToken('/api/v1/app-usage?format=csv')).toBe('/api/v1/app-usage?format=csv');
    expect(redactDownloadToken('/api/v1/downloads')).toBe('/api/v1/downloads');
  });
});

/** The port's contract, run against both adapters. */
function tokenStoreContract(name: string, make: (now: () => number) => Promise<DownloadTokenStore>) {
  describe(`${name} download token store`, () => {
    it('hands a grant out once, also to concurrent takers; an unknown hash is null', async () => {
      const store = await make(() => 1000);
      const grant = { tenant_id: 't', user_id: 'u', session_version: 0, url: '/api/v1/audit?format=csv', expires_at: 61_000, cookie_hash: 'c' };
      await store.put('h1', grant);
      // Looking does not take.
      expect(await store.peek('h1')).toEqual(grant);
      expect(await store.peek('h1')).toEqual(grant);
      const taken = await Promise.all([store.take('h1'), store.take('h1'), store.take('h1')]);
      expect(taken.filter((g) => g !== null)).toEqual([grant]);
      expect(await store.take('nope')).toBeNull();
      expect(await store.peek('h1')).toBeNull();
      expect(await store.peek('nope')).toBeNull();
    });
  });
}

tokenStoreContract('in-process', async (now) => new InProcessDownloadTokens(now));

describe('in-process download tokens', () => {
  it('drops expired grants on issue, so memory holds the last minute of links only', async () => {
    let now = 0;
    const store = new InProcessDownloadTokens(() => now);
    for (let i = 0; i < 100; i++) await store.put(`h${i}`, { tenant_id: 't', user_id: 'u', session_version: 0, url: '/x', expires_at: now + 60_000, cookie_hash: 'c' });
    now = 60_000;
    await store.put('fresh', { tenant_id: 't', user_id: 'u', session_version: 0, url: '/x', expires_at: now + 60_000, cookie_hash: 'c' });
    expect(store.size).toBe(1);
  });
});

describeWithRedis('download links across API processes (one Redis)', (redisUrl) => {
  let dir: string;
  let prefix: string;
  const cleanup: Array<() => Promise<unknown>> = [];

  tokenStoreContract('Redis', async (now) => {
    const redis = createRedis(redisUrl, { name: 'download-tokens-contract' });
    cleanup.push(() => redis.quit());
    return new RedisDownloadTokens(redis, uniquePrefix(), now);
  });

  async function apiProcess(file: string, keyRing: KeyRing): Promise<Harness & { redis: Redis }> {
    const store = new SqliteStore({ file });
    await store.init();
    const redis: Redis = createRedis(redisUrl, { name: 'download-tokens-test' });
    const h = await startHarness({ rateLimitPerMin: 1_000_000, store, keyRing, redis: { connection: redis, prefix } });
    cleanup.push(async () => {
      await h.close();
      if (redis.status !== 'end') await redis.quit();
      await store.close();
    });
    return Object.assign(h, { redis });
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-download-tokens-'));
    prefix = uniquePrefix();
  });
  afterEach(async () => {
    for (const close of cleanup.splice(0).reverse()) await close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a link issued by one process is redeemed on another, once, when both race for it with its cookie; a racer without it never gets it', async () => {
    const file = join(dir, 'edgeplane.db');
    const keyRing = await KeyRing.open(null);
    const a = await apiProcess(file, keyRing);
    const b = await apiProcess(file, keyRing);
    const { owner, tenantId } = await createTenant(a.app, await login(a.app, OPERATOR_EMAIL), 'Cluster');
    await seedUsage(a.store, tenantId, 'twr-1', [{ device_id: 'dev-cluster', app: 'slack', action: 'x', effect: 'allow' }], a.clock.now);
    const urls = await Promise.all([a, b].map((h) => h.app.listen({ host: '127.0.0.1', port: 0 })));
    for (let round = 0; round < 5; round++) {
      const { url } = await link(a, owner, { path: '/api/v1/app-usage', format: 'csv' });
      // Two with the link's cookie, one on each process, and a third without it (the link leaked).
      const answers = await Promise.all([
        ...urls.map((base) => fetch(`${base}${url}`, { headers: withCookie(url) })),
        fetch(`${urls[round % 2]}${url}`),
      ]);
      const bodies = await Promise.all(answers.map((r) => r.text()));
      expect(answers.map((r) => r.status).sort()).toEqual([200, 404, 404]);
      expect(answers[2]!.status).toBe(404);
      expect(bodies.find((_, i) => answers[i]!.status === 200)).toContain('dev-cluster');
    }
  });

  it('answers 503, not 500, when Redis is unreachable', async () => {
    const a = await apiProcess(join(dir, 'edgeplane.db'), await KeyRing.open(null));
    const { owner } = await createTenant(a.app, await login(a.app, OPERATOR_EMAIL), 'NoRedis');
    const { url } = await link(a, owner, { path: '/api/v1/app-usage', format: 'csv' });
    a.redis.disconnect();
    const issued = await issue(a, owner, { path: '/api/v1/app-usage', format: 'csv' });
    expect(issued.statusCode, issued.body).toBe(503);
    expect(json<{ error: { code: string } }>(issued).error.code).toBe('UNAVAILABLE');
    expect((await redeem(a, url)).statusCode).toBe(503);
  });
});
