/**
 * Signing out ends the sign-in's access tokens, not only its refresh token (trust boundary): after
 * `POST /auth/logout` an access token of that sign-in is refused on REST, its open feed closes
 * (4401), a new feed upgrade is refused, a download link it minted is refused, and an export it is
 * streaming is cut between pages. A second API process on the same SQLite file, whose bus hears
 * nothing of the first, refuses it too (the store is the truth) and its credential round closes
 * the feed; over a shared Redis bus the announcement reaches it (its schema holds across
 * processes). The same account's other sign-in, and another tenant's, go on untouched. Over real
 * HTTP and real WebSockets; nothing sleeps.
 */
import type { AddressInfo } from 'node:net';
import { decodeJwt } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { BusEvents } from '../shared/bus.js';
import { describeWithRedis } from '../test/support/redis.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { seedUsage } from './seed-usage.js';
import { OPERATOR_EMAIL, apiPairPerTest, createTenant, json, login, feedUpgradeStatus, holdSecondUsagePage, openAlertsFeed, readBodyToEnd, sqliteHarnessPerTest, startHarness, type Harness, type Session } from './test-support.js';


const port = (h: Harness) => (h.app.server.address() as AddressInfo).port;
const me = async (h: Harness, session: Session) => (await h.app.inject({ method: 'GET', url: '/api/v1/me', headers: session.headers })).statusCode;
const logout = async (h: Harness, refresh: string) =>
  (await h.app.inject({ method: 'POST', url: '/api/v1/auth/logout', payload: { refresh_token: refresh } })).statusCode;

describe('signing out ends the sign-in’s access tokens (one API process)', () => {
  let h: Harness;
  let operator: Session;
  let signedOut: Session;
  let otherSignIn: Session;
  let otherTenant: Session;
  const sockets: WebSocket[] = [];

  beforeEach(async () => {
    h = await startHarness({ rateLimitPerMin: 1_000_000 });
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    operator = await login(h.app, OPERATOR_EMAIL);
    const acme = await createTenant(h.app, operator, 'Acme');
    signedOut = acme.owner;
    // The same account in another browser: another sign-in, another family.
    otherSignIn = await login(h.app, acme.ownerEmail);
    otherTenant = (await createTenant(h.app, operator, 'Beta')).owner;
  });
  afterEach(async () => {
    for (const ws of sockets.splice(0)) ws.terminate();
    await h.close();
  });

  it('each access token names its sign-in, and two sign-ins of one account name two', () => {
    const sid = (s: Session) => decodeJwt(s.access).sid;
    expect(typeof sid(signedOut)).toBe('string');
    expect(sid(signedOut)).not.toBe(sid(otherSignIn));
  });

  it('REST, a new feed, an open feed and a download link of the sign-in are refused; the account’s other sign-in and another tenant go on', async () => {
    const feed = await openAlertsFeed(h, signedOut.access);
    const otherFeed = await openAlertsFeed(h, otherSignIn.access);
    const otherTenantFeed = await openAlertsFeed(h, otherTenant.access);
    sockets.push(feed.ws, otherFeed.ws, otherTenantFeed.ws);
    const mintLink = (session: Session) =>
      h.app.inject({ method: 'POST', url: '/api/v1/downloads', headers: session.headers, payload: { path: '/api/v1/app-usage', format: 'csv' } });
    const minted = await mintLink(signedOut);
    expect(minted.statusCode, minted.body).toBe(201);
    const otherLink = await mintLink(otherSignIn);
    expect(otherLink.statusCode, otherLink.body).toBe(201);

    expect(await logout(h, signedOut.refresh)).toBe(204);

    expect(await feed.closed).toEqual({ code: 4401, reason: 'signed out' });
    expect(await me(h, signedOut)).toBe(401);
    expect(await feedUpgradeStatus(h, signedOut.access)).toBe(401);
    // Opened as the browser that asked for it would: with the link's cookie.
    const cookieOf = (res: typeof minted) => String(res.headers['set-cookie']).split(';')[0]!;
    const redeemed = await h.app.inject({ method: 'GET', url: json<{ url: string }>(minted).url, headers: { cookie: cookieOf(minted) } });
    expect(redeemed.statusCode, redeemed.body).toBe(401);
    expect(redeemed.body).toContain('The session this download link was issued to has ended');
    // The refresh token is gone with it, as before.
    const refreshed = await h.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refresh_token: signedOut.refresh } });
    expect(refreshed.statusCode).toBe(401);

    // Isolation between sign-ins of one account, and between tenants.
    expect(await me(h, otherSignIn)).toBe(200);
    expect(await me(h, otherTenant)).toBe(200);
    expect(otherFeed.ws.readyState).toBe(WebSocket.OPEN);
    expect(otherTenantFeed.ws.readyState).toBe(WebSocket.OPEN);
    expect((await h.app.inject({ method: 'GET', url: json<{ url: string }>(otherLink).url, headers: { cookie: cookieOf(otherLink) } })).statusCode).toBe(200);
    await h.app.feeds.recheckAuthorizations();
    expect(otherFeed.ws.readyState).toBe(WebSocket.OPEN);
    expect(h.app.feeds.size).toBe(2);
  });

  it('a sign-out with an unknown or already revoked refresh token is 204 and ends nothing', async () => {
    expect(await logout(h, 'not-a-refresh-token')).toBe(204);
    expect(await me(h, signedOut)).toBe(200);
    expect(await logout(h, signedOut.refresh)).toBe(204);
    expect(await logout(h, signedOut.refresh)).toBe(204);
    expect(await me(h, signedOut)).toBe(401);
    expect(await me(h, otherSignIn)).toBe(200);
  });

  it('a reused refresh token ends the sign-in’s access tokens too (the family is revoked)', async () => {
    const res = await h.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refresh_token: signedOut.refresh } });
    expect(res.statusCode).toBe(200);
    const rotated = json<{ access_token: string }>(res).access_token;
    expect(await me(h, { ...signedOut, headers: { authorization: `Bearer ${rotated}` } })).toBe(200);
    // The consumed token presented again: a copy. The thief and the victim both sign in again.
    expect((await h.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refresh_token: signedOut.refresh } })).statusCode).toBe(401);
    expect(await me(h, { ...signedOut, headers: { authorization: `Bearer ${rotated}` } })).toBe(401);
    expect(await me(h, signedOut)).toBe(401);
    expect(await me(h, otherSignIn)).toBe(200);
  });

  it('a token issued before tokens named their sign-in (no sid) is judged by its account alone, until it expires', async () => {
    const account = (await h.app.inject({ method: 'GET', url: '/api/v1/me', headers: signedOut.headers })).json<{ user: { id: string; tenant_id: string; session_version: number } }>().user;
    const legacy = await h.app.tokens.sign({ sub: account.id, tenant_id: account.tenant_id, role: 'owner', sv: account.session_version });
    expect(decodeJwt(legacy).sid).toBeUndefined();
    expect(await logout(h, signedOut.refresh)).toBe(204);
    expect(await me(h, { ...signedOut, headers: { authorization: `Bearer ${legacy}` } })).toBe(200);
  });
});

describe('signing out cuts an export the sign-in is streaming', () => {
  let store: SqliteStore;
  let h: Harness;
  sqliteHarnessPerTest('edgeplane-logout-export-', (made) => ({ h, store } = made));

  it('no page goes out after the sign-out: the download is cut', async () => {
    const operator = await login(h.app, OPERATOR_EMAIL);
    const { tenantId, owner } = await createTenant(h.app, operator, 'Acme');
    const events = Array.from({ length: 2500 }, (_, i) => ({ device_id: `dev-${i}`, app: 'slack', action: 'open', effect: 'allow' as const }));
    for (let i = 0; i < events.length; i += 500) await seedUsage(store, tenantId, 'twr-1', events.slice(i, i + 500), h.clock.now);
    const { held, release } = holdSecondUsagePage(store);

    const res = await fetch(`http://127.0.0.1:${port(h)}/api/v1/app-usage?format=csv`, { headers: owner.headers });
    expect(res.status).toBe(200);
    const body = readBodyToEnd(res);
    await held;
    expect(await logout(h, owner.refresh)).toBe(204);
    release();
    const { text, cut } = await body;
    expect(cut).toBe(true);
    // The header and the first page (sent before the sign-out), nothing of the second.
    expect(text.split('\r\n').filter((line) => line.length > 0).length).toBe(1 + 1000);
    expect(h.counters.get('exports_cut_total', { reason: 'revoked' })).toBe(1);
  });
});

describe('a sign-out through one API process ends the token on another whose announcement is lost', () => {
  let a: Harness;
  let b: Harness;
  // Each with its own in-process bus: A hears nothing B announces.
  const sockets = apiPairPerTest({ dirPrefix: 'edgeplane-logout-lost-' }, (pair) => ({ a, b } = pair));

  it('A refuses the token at once (store read) and its credential round closes the feed; the other sign-in and tenant go on', async () => {
    const operator = await login(a.app, OPERATOR_EMAIL);
    const acme = await createTenant(a.app, operator, 'Acme');
    const other = await login(a.app, acme.ownerEmail);
    const beta = (await createTenant(a.app, operator, 'Beta')).owner;
    const feed = await openAlertsFeed(a, acme.owner.access);
    const otherFeed = await openAlertsFeed(a, other.access);
    const betaFeed = await openAlertsFeed(a, beta.access);
    sockets.push(feed.ws, otherFeed.ws, betaFeed.ws);

    expect(await logout(b, acme.owner.refresh)).toBe(204);

    expect(await me(a, acme.owner)).toBe(401);
    expect(await feedUpgradeStatus(a, acme.owner.access)).toBe(401);
    await a.app.feeds.recheckAuthorizations();
    expect(await feed.closed).toEqual({ code: 4401, reason: 'credential revoked' });
    expect(await me(a, other)).toBe(200);
    expect(await me(a, beta)).toBe(200);
    expect(otherFeed.ws.readyState).toBe(WebSocket.OPEN);
    expect(betaFeed.ws.readyState).toBe(WebSocket.OPEN);
    expect(a.app.feeds.size).toBe(2);
  });
});

describeWithRedis('a sign-out through one API process is announced to another over Redis', (url) => {
  let a: Harness;
  let b: Harness;
  const sockets = apiPairPerTest({ dirPrefix: 'edgeplane-logout-cluster-', redisUrl: url }, (pair) => ({ a, b } = pair));

  it("A hears which sign-in ended and closes its feed; the account's other sign-in keeps its own", async () => {
    const operator = await login(a.app, OPERATOR_EMAIL);
    const acme = await createTenant(a.app, operator, 'Acme');
    const other = await login(a.app, acme.ownerEmail);
    const feed = await openAlertsFeed(a, acme.owner.access);
    const otherFeed = await openAlertsFeed(a, other.access);
    sockets.push(feed.ws, otherFeed.ws);
    const heard = new Promise<BusEvents['console-session.ended']>((resolve) => a.bus.subscribe('console-session.ended', resolve, {}, 'cluster'));

    expect(await logout(b, acme.owner.refresh)).toBe(204);

    expect(await heard).toEqual({ user_id: decodeJwt(acme.owner.access).sub, session_id: decodeJwt(acme.owner.access).sid });
    // The announcement or, had it been slower, A's own credential round: 4401 either way.
    expect((await feed.closed).code).toBe(4401);
    expect(await me(a, acme.owner)).toBe(401);
    expect(await me(a, other)).toBe(200);
    expect(otherFeed.ws.readyState).toBe(WebSocket.OPEN);
  });
});
