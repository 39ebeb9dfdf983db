/**
 * A live feed never outlives the credential that opened it, over real WebSockets: revoking the API
 * key, or disabling, deleting, re-roling or re-passwording the console account, closes its feeds
 * (4401) — in the same process, and across API processes through the Redis bus ('cluster' scope).
 * An access token's expiry closes its feed by itself, without waiting for a heartbeat. And when the
 * announcement between processes is lost (two API processes on one store file, each with its own
 * in-process bus), the periodic re-authentication of every open credential still closes the feed.
 * Nothing sleeps: tests await the socket's close.
 */
import { decodeJwt } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { describeWithRedis } from '../test/support/redis.js';
import type { ConsoleUser } from '../shared/domain.js';
import { FEED_DROPPED_COUNTER } from './feeds.js';
import { OPERATOR_EMAIL, PASSWORD, apiPairPerTest, createTenant, json, login, feedUpgradeStatus, openAlertsFeed, startHarness, type Harness, type Session } from './test-support.js';


const call = (h: Harness, session: Session, method: 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, payload?: object) =>
  h.app.inject({ method, url, headers: session.headers, ...(payload && { payload }) });

async function createViewer(h: Harness, owner: Session, email: string): Promise<ConsoleUser> {
  const res = await call(h, owner, 'POST', '/api/v1/console-users', { email, password: PASSWORD, console_role: 'viewer' });
  expect(res.statusCode, res.body).toBe(201);
  return json<{ user: ConsoleUser }>(res).user;
}

async function createKey(h: Harness, owner: Session): Promise<{ id: string; key: string }> {
  const res = await call(h, owner, 'POST', '/api/v1/api-keys', { name: 'feed', scopes: ['feeds:read', 'alerts:read', 'remediation:read'] });
  const body = json<{ api_key: { id: string }; key: string }>(res);
  return { id: body.api_key.id, key: body.key };
}

describe('feeds close when their credential ends (one process)', () => {
  let h: Harness;
  let owner: Session;
  const sockets: WebSocket[] = [];

  beforeEach(async () => {
    h = await startHarness({ rateLimitPerMin: 1_000_000 });
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const operator = await login(h.app, OPERATOR_EMAIL);
    owner = (await createTenant(h.app, operator, 'Acme')).owner;
  });
  afterEach(async () => {
    for (const ws of sockets.splice(0)) ws.terminate();
    await h.close();
  });

  it('revoking an API key closes the feeds opened with it, and only those', async () => {
    const [revoked, kept] = [await createKey(h, owner), await createKey(h, owner)];
    const feed = await openAlertsFeed(h, revoked.key);
    const other = await openAlertsFeed(h, kept.key);
    const ownerFeed = await openAlertsFeed(h, owner.access);
    sockets.push(feed.ws, other.ws, ownerFeed.ws);
    expect((await call(h, owner, 'DELETE', `/api/v1/api-keys/${revoked.id}`)).statusCode).toBe(204);
    expect(await feed.closed).toEqual({ code: 4401, reason: 'API key revoked' });
    expect(await feedUpgradeStatus(h, revoked.key)).toBe(401);
    expect(other.ws.readyState).toBe(WebSocket.OPEN);
    expect(ownerFeed.ws.readyState).toBe(WebSocket.OPEN);
    expect(h.app.feeds.size).toBe(2);
  });

  type Change = (id: string) => ['PATCH' | 'PUT' | 'DELETE', string, object | undefined];
  const cases: Array<[string, Change, string]> = [
    ['disabled', (id) => ['PATCH', `/api/v1/console-users/${id}`, { disabled: true }], 'console account disabled'],
    ['deleted', (id) => ['DELETE', `/api/v1/console-users/${id}`, undefined], 'console account deleted'],
    ['re-roled', (id) => ['PATCH', `/api/v1/console-users/${id}`, { console_role: 'analyst' }], 'console account role changed'],
    ['re-passworded', (id) => ['PUT', `/api/v1/console-users/${id}/password`, { password: 'another long passphrase' }], 'console account password changed'],
  ];
  it.each(cases)('an account %s loses its feeds at once', async (_what, request, reason) => {
    const viewer = await createViewer(h, owner, 'viewer@acme.test');
    const session = await login(h.app, 'viewer@acme.test');
    const feed = await openAlertsFeed(h, session.access);
    const ownerFeed = await openAlertsFeed(h, owner.access);
    sockets.push(feed.ws, ownerFeed.ws);
    const [method, url, payload] = request(viewer.id);
    const res = await call(h, owner, method, url, payload);
    expect(res.statusCode, res.body).toBeLessThan(300);
    expect(await feed.closed).toEqual({ code: 4401, reason });
    expect(await feedUpgradeStatus(h, session.access)).toBe(401);
    expect(ownerFeed.ws.readyState).toBe(WebSocket.OPEN);
  });

  it("retiring the signing key closes the feeds opened with tokens it signed, and only those", async () => {
    const operator = await login(h.app, OPERATOR_EMAIL);
    const oldFeed = await openAlertsFeed(h, owner.access);
    sockets.push(oldFeed.ws);
    expect((await call(h, operator, 'POST', '/api/v1/signing-keys/rotate')).statusCode).toBe(200);
    // Signed with the new key: stays open.
    const fresh = await login(h.app, 'owner@acme.test');
    const newFeed = await openAlertsFeed(h, fresh.access);
    sockets.push(newFeed.ws);
    h.clock.now += 1000;
    const res = await call(h, operator, 'POST', '/api/v1/signing-keys/retire', { before: h.clock.now });
    expect(res.statusCode, res.body).toBe(200);
    expect(await oldFeed.closed).toEqual({ code: 4401, reason: 'credential no longer valid' });
    expect(newFeed.ws.readyState).toBe(WebSocket.OPEN);
    expect(h.app.feeds.size).toBe(1);
  });

  it('an access token closes its feed when it expires, without a heartbeat', async () => {
    const exp = (decodeJwt(owner.access).exp ?? 0) * 1000;
    // One millisecond before expiry on the server's clock: the upgrade is accepted, then the
    // feed's own timer closes it.
    h.clock.now = exp - 1;
    const feed = await openAlertsFeed(h, owner.access);
    sockets.push(feed.ws);
    expect(await feed.closed).toEqual({ code: 4401, reason: 'credential expired' });
  });

  it('an API key closes its feed when the key expires', async () => {
    const res = await call(h, owner, 'POST', '/api/v1/api-keys', { name: 'short', scopes: ['feeds:read', 'alerts:read', 'remediation:read'], expires_in_s: 60 });
    const { api_key, key } = json<{ api_key: { expires_at: number }; key: string }>(res);
    h.clock.now = api_key.expires_at - 1;
    const feed = await openAlertsFeed(h, key);
    sockets.push(feed.ws);
    expect(await feed.closed).toEqual({ code: 4401, reason: 'credential expired' });
  });
});

describeWithRedis('feeds close when their credential ends on another API process', (url) => {
  let a: Harness;
  let b: Harness;
  let ownerOnB: Session;
  // Each its own store handle on the shared file, one Redis bus, shared keys.
  const sockets = apiPairPerTest({ dirPrefix: 'edgeplane-feeds-cluster-', redisUrl: url }, (pair) => ({ a, b } = pair));

  beforeEach(async () => {
    const operator = await login(b.app, OPERATOR_EMAIL);
    ownerOnB = (await createTenant(b.app, operator, 'Acme')).owner;
  });

  it('a key revoked through process B closes its feed on process A', async () => {
    const key = await createKey(b, ownerOnB);
    const feed = await openAlertsFeed(a, key.key);
    sockets.push(feed.ws);
    expect((await call(b, ownerOnB, 'DELETE', `/api/v1/api-keys/${key.id}`)).statusCode).toBe(204);
    expect(await feed.closed).toEqual({ code: 4401, reason: 'API key revoked' });
    expect(await feedUpgradeStatus(a, key.key)).toBe(401);
  });

  it('an account disabled through process B loses its feed on process A', async () => {
    const viewer = await createViewer(b, ownerOnB, 'viewer@acme.test');
    const session = await login(a.app, 'viewer@acme.test');
    const feed = await openAlertsFeed(a, session.access);
    const ownerFeed = await openAlertsFeed(a, ownerOnB.access);
    sockets.push(feed.ws, ownerFeed.ws);
    expect((await call(b, ownerOnB, 'PATCH', `/api/v1/console-users/${viewer.id}`, { disabled: true })).statusCode).toBe(200);
    expect(await feed.closed).toEqual({ code: 4401, reason: 'console account disabled' });
    // Process A refuses the token on its own (session version in the shared store).
    expect(await feedUpgradeStatus(a, session.access)).toBe(401);
    expect(ownerFeed.ws.readyState).toBe(WebSocket.OPEN);
  });
});

describe('feeds close when their credential ends on another API process whose announcement is lost', () => {
  let a: Harness;
  let b: Harness;
  let ownerOnB: Session;
  // Each on the shared file with its own in-process bus: it hears nothing from the other.
  const sockets = apiPairPerTest({ dirPrefix: 'edgeplane-feeds-lost-' }, (pair) => ({ a, b } = pair));

  beforeEach(async () => {
    const operator = await login(b.app, OPERATOR_EMAIL);
    ownerOnB = (await createTenant(b.app, operator, 'Acme')).owner;
  });

  it('a key revoked through B: the next credential round on A closes its feed, and only its feed', async () => {
    const [revoked, kept] = [await createKey(b, ownerOnB), await createKey(b, ownerOnB)];
    const feed = await openAlertsFeed(a, revoked.key);
    const twin = await openAlertsFeed(a, revoked.key);
    const other = await openAlertsFeed(a, kept.key);
    const ownerFeed = await openAlertsFeed(a, ownerOnB.access);
    sockets.push(feed.ws, twin.ws, other.ws, ownerFeed.ws);
    expect((await call(b, ownerOnB, 'DELETE', `/api/v1/api-keys/${revoked.id}`)).statusCode).toBe(204);
    // The hub's own timer may have run the round already; running it again changes nothing.
    await a.app.feeds.recheckAuthorizations();
    expect(a.app.feeds.size).toBe(2);
    expect(await feed.closed).toEqual({ code: 4401, reason: 'credential revoked' });
    expect(await twin.closed).toEqual({ code: 4401, reason: 'credential revoked' });
    expect(a.counters.get(FEED_DROPPED_COUNTER, { feed: 'alerts', reason: 'revoked' })).toBe(2);
    expect(other.ws.readyState).toBe(WebSocket.OPEN);
    expect(ownerFeed.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('an account disabled through B loses its feed on A at the next round of the timer', async () => {
    const viewer = await createViewer(b, ownerOnB, 'viewer@acme.test');
    const session = await login(a.app, 'viewer@acme.test');
    const feed = await openAlertsFeed(a, session.access);
    const ownerFeed = await openAlertsFeed(a, ownerOnB.access);
    sockets.push(feed.ws, ownerFeed.ws);
    expect((await call(b, ownerOnB, 'PATCH', `/api/v1/console-users/${viewer.id}`, { disabled: true })).statusCode).toBe(200);
    // Nothing is called: the hub's own credential timer finds it.
    expect(await feed.closed).toEqual({ code: 4401, reason: 'credential revoked' });
    expect(ownerFeed.ws.readyState).toBe(WebSocket.OPEN);
  });

  it("a key whose creator is demoted on B loses its feed on A when it loses a read scope, not when it loses only a write scope", async () => {
    const res = await call(b, ownerOnB, 'POST', '/api/v1/console-users', { email: 'admin@acme.test', password: PASSWORD, console_role: 'admin' });
    expect(res.statusCode, res.body).toBe(201);
    const adminId = json<{ user: ConsoleUser }>(res).user.id;
    const admin = await login(b.app, 'admin@acme.test');
    const keyWith = async (scopes: string[]) => json<{ key: string }>(await call(b, admin, 'POST', '/api/v1/api-keys', { name: 'feed', scopes })).key;
    const readsAudit = await openAlertsFeed(a, await keyWith(['feeds:read', 'alerts:read', 'remediation:read', 'audit:read']));
    const writesDevices = await openAlertsFeed(a, await keyWith(['feeds:read', 'alerts:read', 'remediation:read', 'devices:write']));
    sockets.push(readsAudit.ws, writesDevices.ws);
    // An analyst holds neither audit:read nor devices:write.
    expect((await call(b, ownerOnB, 'PATCH', `/api/v1/console-users/${adminId}`, { console_role: 'analyst' })).statusCode).toBe(200);
    await a.app.feeds.recheckAuthorizations();
    expect(await readsAudit.closed).toEqual({ code: 4401, reason: 'credential revoked' });
    expect(writesDevices.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('a re-roled account loses its feed on A; the owner, unchanged, keeps theirs', async () => {
    const viewer = await createViewer(b, ownerOnB, 'viewer@acme.test');
    const session = await login(a.app, 'viewer@acme.test');
    const feed = await openAlertsFeed(a, session.access);
    const ownerFeed = await openAlertsFeed(a, ownerOnB.access);
    sockets.push(feed.ws, ownerFeed.ws);
    expect((await call(b, ownerOnB, 'PATCH', `/api/v1/console-users/${viewer.id}`, { console_role: 'analyst' })).statusCode).toBe(200);
    await a.app.feeds.recheckAuthorizations();
    expect(await feed.closed).toEqual({ code: 4401, reason: 'credential revoked' });
    expect(ownerFeed.ws.readyState).toBe(WebSocket.OPEN);
    expect(a.app.feeds.size).toBe(1);
  });
});
