/**
 * A carrier push in progress stops at the revocation of its credential, over real HTTP against a
 * real SQLite file: the push is held inside the store right after one of its records was applied,
 * the credential is revoked (204), the push is let go, and no record after the held one is applied;
 * those before it were applied exactly once. In one process the bus announcement cuts it; across
 * API processes whose announcement was lost (two processes on one store file, each with its own
 * in-process bus), the bounded re-read of the credential does, a second later on the API clock.
 * An export walking its pages is cut the same way: no page goes out after the revocation.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describeWithRedis, uniquePrefix } from '../test/support/redis.js';
import { KeyRing } from '../shared/auth/tokens.js';
import { DEFAULT_RECHECK } from '../shared/auth/bounded-recheck.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { seedUsage } from './seed-usage.js';
import { OPERATOR_EMAIL, createTenant, holdSecondUsagePage, login, post, readBodyToEnd, sqliteHarnessPerTest, startApiProcess, type Harness, type Session } from './test-support.js';
import { holdTowerFeedAfter as holdAfter, feedTowers } from '../test/support/hold-carrier-feed.js';


const towers = (n: number) => feedTowers(n, 'cut-');

function baseUrl(h: Harness): string {
  return `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
}

async function issueCarrier(h: Harness, operator: Session): Promise<{ carrierId: string; credentialId: string; key: string }> {
  const { carrier } = await post<{ carrier: { id: string } }>(h.app, operator, '/api/v1/carriers', { name: 'Cutco' });
  const issued = await post<{ key: string; credential: { id: string } }>(h.app, operator, `/api/v1/carriers/${carrier.id}/credentials`, {});
  return { carrierId: carrier.id, credentialId: issued.credential.id, key: issued.key };
}

function pushOver(h: Harness, key: string, records: unknown[]): Promise<Response> {
  return fetch(`${baseUrl(h)}/api/v1/carrier-feeds/towers`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ records }),
  });
}

function revokeOver(h: Harness, operator: Session, carrierId: string, credentialId: string): Promise<Response> {
  return fetch(`${baseUrl(h)}/api/v1/carriers/${carrierId}/credentials/${credentialId}`, { method: 'DELETE', headers: operator.headers });
}

async function storedTowers(store: SqliteStore, n: number): Promise<boolean[]> {
  return Promise.all(Array.from({ length: n }, async (_, i) => (await store.towers.get(`cut-${i}`)) !== null));
}

describe('a carrier push in progress stops at its revocation', () => {
  let dir: string;
  const cleanup: Array<() => Promise<unknown>> = [];

  const apiProcess = (file: string, keyRing: KeyRing) => startApiProcess({ file, keyRing, cleanup });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-push-revoke-'));
  });
  afterEach(async () => {
    for (const close of cleanup.splice(0).reverse()) await close();
    await rm(dir, { recursive: true, force: true });
  });

  it('revoked through the same process: nothing after the held record is applied, what came before is applied once', async () => {
    const { h, store } = await apiProcess(join(dir, 'edgeplane.db'), await KeyRing.open(null));
    const operator = await login(h.app, OPERATOR_EMAIL);
    const carrier = await issueCarrier(h, operator);
    const hold = holdAfter(store, 'cut-2');
    const pushed = pushOver(h, carrier.key, towers(6));
    await hold.held;

    expect((await revokeOver(h, operator, carrier.carrierId, carrier.credentialId)).status).toBe(204);
    hold.release();
    const res = await pushed;
    expect(res.status).toBe(401);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('UNAUTHENTICATED');
    expect(body.error.message).toMatch(/the 3 records before index 3 were applied, the 3 from it on were not/);
    expect(hold.appliedIds).toEqual(['cut-0', 'cut-1', 'cut-2']);
    expect(await storedTowers(store, 6)).toEqual([true, true, true, false, false, false]);
    expect(h.counters.get('carrier_feed_records_total', { kind: 'towers', outcome: 'cut' })).toBe(3);
    // A further push under the revoked credential is refused at the door.
    expect((await pushOver(h, carrier.key, towers(1))).status).toBe(401);
  });

  it('revoked through another process whose announcement never arrived: cut within the re-read bound', async () => {
    const file = join(dir, 'edgeplane.db');
    const keyRing = await KeyRing.open(null);
    const a = await apiProcess(file, keyRing);
    const b = await apiProcess(file, keyRing);
    const operatorOnB = await login(b.h.app, OPERATOR_EMAIL);
    const carrier = await issueCarrier(b.h, operatorOnB);
    const hold = holdAfter(a.store, 'cut-1');
    const pushed = pushOver(a.h, carrier.key, towers(5));
    await hold.held;

    // Each process has its own in-process bus: A never hears of this revocation.
    expect((await revokeOver(b.h, operatorOnB, carrier.carrierId, carrier.credentialId)).status).toBe(204);
    a.h.clock.advance(DEFAULT_RECHECK.intervalMs);
    hold.release();
    expect((await pushed).status).toBe(401);
    expect(hold.appliedIds).toEqual(['cut-0', 'cut-1']);
    expect(await storedTowers(a.store, 5)).toEqual([true, true, false, false, false]);
  });

  it('a push that no revocation touches is applied whole, reading its credential again along the way', async () => {
    const { h, store } = await apiProcess(join(dir, 'edgeplane.db'), await KeyRing.open(null));
    const operator = await login(h.app, OPERATOR_EMAIL);
    const carrier = await issueCarrier(h, operator);
    const n = DEFAULT_RECHECK.everySteps + 5;
    const res = await pushOver(h, carrier.key, towers(n));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { counts: { created: number } }).counts.created).toBe(n);
    expect((await storedTowers(store, n)).every(Boolean)).toBe(true);
  });
});

describe('an export walking its pages stops at the revocation of its credential', () => {
  let h: Harness;
  let store: SqliteStore;
  sqliteHarnessPerTest('edgeplane-export-revoke-', (made) => ({ h, store } = made));

  it('an API key revoked while its CSV export is between pages: the rest is never sent, the download is cut', async () => {
    const operator = await login(h.app, OPERATOR_EMAIL);
    const { tenantId, owner } = await createTenant(h.app, operator, 'Acme');
    const events = Array.from({ length: 2500 }, (_, i) => ({ device_id: `dev-${i}`, app: 'slack', action: 'open', effect: 'allow' as const }));
    for (let i = 0; i < events.length; i += 500) await seedUsage(store, tenantId, 'twr-1', events.slice(i, i + 500), h.clock.now);
    const issued = await post<{ api_key: { id: string }; key: string }>(h.app, owner, '/api/v1/api-keys', { name: 'export', scopes: ['usage:read'] });
    const hold = holdSecondUsagePage(store);

    const res = await fetch(`${baseUrl(h)}/api/v1/app-usage?format=csv`, { headers: { authorization: `Bearer ${issued.key}` } });
    expect(res.status).toBe(200);
    const body = readBodyToEnd(res);
    await hold.held;
    const revoked = await fetch(`${baseUrl(h)}/api/v1/api-keys/${issued.api_key.id}`, { method: 'DELETE', headers: owner.headers });
    expect(revoked.status).toBe(204);
    hold.release();

    const { text, cut } = await body;
    expect(cut).toBe(true);
    const rows = text.split('\r\n').filter((line) => line.length > 0);
    // The header and the first page (sent before the revocation), nothing of the second.
    expect(rows.length).toBe(1 + 1000);
    expect(h.counters.get('exports_cut_total', { reason: 'revoked' })).toBe(1);
  });
});

describeWithRedis('a carrier push in progress stops at a revocation announced from another API process', (url) => {
  let dir: string;
  const cleanup: Array<() => Promise<unknown>> = [];

  const apiProcess = (file: string, prefix: string, keyRing: KeyRing) => startApiProcess({ file, keyRing, cleanup, redis: { url, prefix } });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-push-revoke-redis-'));
  });
  afterEach(async () => {
    for (const close of cleanup.splice(0).reverse()) await close();
    await rm(dir, { recursive: true, force: true });
  });

  it('the announcement over Redis cuts the push on A at its next record, before any re-read is due', async () => {
    const file = join(dir, 'edgeplane.db');
    const prefix = uniquePrefix();
    const keyRing = await KeyRing.open(null);
    const a = await apiProcess(file, prefix, keyRing);
    const b = await apiProcess(file, prefix, keyRing);
    const operatorOnB = await login(b.h.app, OPERATOR_EMAIL);
    const carrier = await issueCarrier(b.h, operatorOnB);
    const hold = holdAfter(a.store, 'cut-0');
    const pushed = pushOver(a.h, carrier.key, towers(4));
    await hold.held;

    // Registered after the push route's listener, so it runs after it.
    const heard = new Promise<void>((resolve) => a.h.bus.subscribe('carrier-credential.revoked', () => resolve(), {}, 'cluster'));
    expect((await revokeOver(b.h, operatorOnB, carrier.carrierId, carrier.credentialId)).status).toBe(204);
    await heard;
    hold.release();
    expect((await pushed).status).toBe(401);
    expect(hold.appliedIds).toEqual(['cut-0']);
    expect(await storedTowers(a.store, 4)).toEqual([true, false, false, false]);
  });
});
