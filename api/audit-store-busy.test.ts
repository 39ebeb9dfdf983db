/**
 * Audit (fault injection): another process holds the SQLite store's write lock past the busy
 * timeout (5 s) — a long write, or a process stalled mid-transaction on the same file (distributed
 * roles on one host, a CLI command). Real SQLite file, a second real connection holding
 * BEGIN IMMEDIATE with a pending write.
 *
 * Expected: reads go on; a write is refused with 503 UNAVAILABLE naming the storage and a
 * Retry-After (it was a 500 INTERNAL with a stack in the log), leaves nothing behind, and the same
 * request succeeds once the lock is released. The refusals are counted and make one episode
 * (`store_busy` gauge), closed by the first write that succeeds; an API key's last-use stamp is
 * skipped rather than failing its read.
 */
import Database from 'better-sqlite3';
import { MongoNetworkError } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, json, login, OPERATOR_EMAIL, startHarness, type Harness, type Session } from './test-support.js';

describe('API writes while another process holds the store write lock', () => {
  let h: Harness;
  let owner: Session;
  let tenantId: string;

  beforeAll(async () => {
    h = await startHarness();
    const operator = await login(h.app, OPERATOR_EMAIL);
    ({ tenantId, owner } = await createTenant(h.app, operator, 'Busy'));
  });

  afterAll(async () => {
    await h?.close();
  });

  it('refuses a write with 503 and Retry-After, serves reads, and accepts the retry once the lock is free', async () => {
    const created = await h.app.inject({ method: 'POST', url: '/api/v1/api-keys', headers: owner.headers, payload: { name: 'reader', scopes: ['devices:read'] } });
    expect(created.statusCode).toBe(201);
    const { key } = json<{ key: string }>(created);
    const other = new Database(h.store.file);
    try {
      other.exec('BEGIN IMMEDIATE');
      other.prepare("UPDATE tenants SET name = 'held' WHERE id = ?").run(tenantId);

      const refused = await h.app.inject({ method: 'POST', url: '/api/v1/devices', headers: owner.headers, payload: { id: 'dev-busy', name: 'phone' } });
      expect(refused.statusCode).toBe(503);
      expect(refused.headers['retry-after']).toBe('1');
      expect(json<{ error: { code: string; message: string } }>(refused).error).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/storage is busy/) });

      // Refused the same way while the lock stays held (without waiting for it again: the store
      // stops waiting once a write has waited out its timeout), counted, one episode for both.
      const again = await h.app.inject({ method: 'POST', url: '/api/v1/devices', headers: owner.headers, payload: { id: 'dev-busy-2', name: 'phone' } });
      expect(again.statusCode).toBe(503);
      expect(h.counters.get('store_busy_errors_total', { source: 'api' })).toBe(2);
      expect(h.app.storeFaults.busy).toBe(true);

      const read = await h.app.inject({ method: 'GET', url: '/api/v1/devices', headers: owner.headers });
      expect(read.statusCode).toBe(200);
      expect(json<{ devices: unknown[] }>(read).devices).toEqual([]);
      // An API key's first use stamps its last use, a write: skipped, counted, the read served.
      const byKey = await h.app.inject({ method: 'GET', url: '/api/v1/devices', headers: { 'x-api-key': key } });
      expect(byKey.statusCode).toBe(200);
      expect(h.counters.get('store_busy_errors_total', { source: 'credentials' })).toBe(1);

      other.exec('COMMIT');
    } finally {
      if (other.inTransaction) other.exec('ROLLBACK');
      other.close();
    }
    const retried = await h.app.inject({ method: 'POST', url: '/api/v1/devices', headers: owner.headers, payload: { id: 'dev-busy', name: 'phone' } });
    expect(retried.statusCode).toBe(201);
    await h.app.auditTrail.flush();
    expect(h.app.storeFaults.busy).toBe(false);
    const listed = json<{ devices: Array<{ id: string }> }>(await h.app.inject({ method: 'GET', url: '/api/v1/devices', headers: owner.headers }));
    expect(listed.devices.map((d) => d.id)).toEqual(['dev-busy']);
    expect((await h.store.tenants.get(tenantId))?.name).toBe('held');
  }, 30_000);
});

describe('API requests while the store does not answer (MongoDB unreachable, no primary)', () => {
  let h: Harness;
  let owner: Session;

  beforeAll(async () => {
    h = await startHarness();
    owner = (await createTenant(h.app, await login(h.app, OPERATOR_EMAIL), 'Unreachable')).owner;
  });
  afterAll(async () => {
    await h?.close();
  });

  it('answers 503 with Retry-After naming the storage, not 500, for reads and writes, and serves again once it answers', async () => {
    // The store as the MongoDB driver fails while no server answers (the SQLite file stands in:
    // no MongoDB server runs here; the error is the driver's own class).
    const list = h.store.devices.list.bind(h.store.devices);
    const create = h.store.devices.create.bind(h.store.devices);
    const down = () => Promise.reject(new MongoNetworkError('connection 3 to 10.0.0.5:27017 closed'));
    h.store.devices.list = down;
    h.store.devices.create = down;
    try {
      const refused = (res: Awaited<ReturnType<typeof h.app.inject>>) => {
        expect(res.statusCode, res.body).toBe(503);
        expect(res.headers['retry-after']).toBe('5');
        expect(json<{ error: { code: string; message: string } }>(res).error).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/storage is unreachable/) });
      };
      refused(await h.app.inject({ method: 'GET', url: '/api/v1/devices', headers: owner.headers }));
      expect(h.app.storeFaults.unreachable).toBe(true);
      refused(await h.app.inject({ method: 'POST', url: '/api/v1/devices', headers: owner.headers, payload: { id: 'dev-down', name: 'phone' } }));
      expect(h.counters.get('store_unreachable_errors_total', { source: 'api' })).toBe(2);
    } finally {
      h.store.devices.list = list;
      h.store.devices.create = create;
    }
    const created = await h.app.inject({ method: 'POST', url: '/api/v1/devices', headers: owner.headers, payload: { id: 'dev-down', name: 'phone' } });
    expect(created.statusCode, created.body).toBe(201);
    await h.app.auditTrail.flush();
    expect(h.app.storeFaults.unreachable).toBe(false);
  });
});
