/**
 * If-Match across API processes: two processes of one deployment (their own store handles on one
 * SQLite file, one Redis). A writer on process A passes its check and is held before it writes;
 * a writer on B with the same ETag must not pass its own check meanwhile (each process's queue
 * alone let it through, and both writes succeeded). And with Redis gone a conditional write is
 * refused (503), never let through unchecked.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { KeyRing } from '../shared/auth/tokens.js';
import { createRedis } from '../shared/redis/connection.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { describeWithRedis, uniquePrefix } from '../test/support/redis.js';
import { OPERATOR_EMAIL, createTenant, json, login, startHarness, type Harness, type Session } from './test-support.js';

describeWithRedis('If-Match across API processes', (url) => {
  let dir: string;
  let prefix: string;
  let keyRing: KeyRing;
  const cleanup: Array<() => Promise<unknown>> = [];

  async function apiProcess(file: string): Promise<{ h: Harness; redis: Redis; store: SqliteStore }> {
    const store = new SqliteStore({ file });
    await store.init();
    const redis = createRedis(url, { name: 'ifmatch-test' });
    const h = await startHarness({ rateLimitPerMin: 1_000_000, store, keyRing, redis: { connection: redis, prefix } });
    cleanup.push(async () => {
      await h.close();
      if (redis.status !== 'end') await redis.quit();
      await store.close();
    });
    return { h, redis, store };
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-ifmatch-cluster-'));
    prefix = uniquePrefix();
    keyRing = await KeyRing.open(null);
  });
  afterEach(async () => {
    for (const close of cleanup.splice(0).reverse()) await close();
    await rm(dir, { recursive: true, force: true });
  });

  const patchTenant = (h: Harness, owner: Session, etag: string, days: number) =>
    h.app.inject({ method: 'PATCH', url: '/api/v1/tenant', headers: { ...owner.headers, 'if-match': etag }, payload: { audit_retention_days: days } });
  const retention = async (h: Harness, owner: Session) =>
    json<{ tenant: { audit_retention_days: number } }>(await h.app.inject({ method: 'GET', url: '/api/v1/tenant', headers: owner.headers })).tenant.audit_retention_days;

  it('a writer on another process waits for the one that passed its check, then finds the ETag changed', async () => {
    const file = join(dir, 'edgeplane.db');
    const a = await apiProcess(file);
    const b = await apiProcess(file);
    const { owner } = await createTenant(a.h.app, await login(a.h.app, OPERATOR_EMAIL), 'Acme');
    const etag = String((await a.h.app.inject({ method: 'GET', url: '/api/v1/tenant', headers: owner.headers })).headers.etag);

    // A's write is held (its check passed) until B's writer has either finished or been seen
    // waiting for the write lock in Redis (B's SET NX refused).
    let releaseA!: () => void;
    const gate = new Promise<void>((r) => (releaseA = r));
    let aWriting!: () => void;
    const aHeld = new Promise<void>((r) => (aWriting = r));
    const update = a.store.tenants.update.bind(a.store.tenants);
    a.store.tenants.update = async (...args: Parameters<typeof update>) => {
      aWriting();
      await gate;
      return update(...args);
    };
    const set = b.redis.set.bind(b.redis) as (...args: unknown[]) => Promise<unknown>;
    (b.redis as unknown as { set: (...args: unknown[]) => Promise<unknown> }).set = async (...args: unknown[]) => {
      const answer = await set(...args);
      if (String(args[0]).includes('ifmatch:') && answer === null) releaseA();
      return answer;
    };

    const first = patchTenant(a.h, owner, etag, 41);
    await aHeld;
    const second = patchTenant(b.h, owner, etag, 42).finally(releaseA);
    const [fromA, fromB] = await Promise.all([first, second]);
    expect([fromA.statusCode, fromB.statusCode], `${fromA.body}\n${fromB.body}`).toEqual([200, 412]);
    expect(await retention(b.h, owner)).toBe(41);
  });

  it('answers 503 to a conditional write while Redis is unreachable, and writes nothing', async () => {
    const a = await apiProcess(join(dir, 'edgeplane.db'));
    const { owner } = await createTenant(a.h.app, await login(a.h.app, OPERATOR_EMAIL), 'Acme');
    const before = await a.h.app.inject({ method: 'GET', url: '/api/v1/tenant', headers: owner.headers });
    const days = json<{ tenant: { audit_retention_days: number } }>(before).tenant.audit_retention_days;
    a.redis.disconnect();
    const res = await patchTenant(a.h, owner, String(before.headers.etag), days + 1);
    expect(res.statusCode, res.body).toBe(503);
    expect(json<{ error: { code: string } }>(res).error.code).toBe('UNAVAILABLE');
    expect(await retention(a.h, owner)).toBe(days);
  });
});
