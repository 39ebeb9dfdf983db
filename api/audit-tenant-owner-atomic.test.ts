/**
 * "Never half-writes": a tenant created with its first owner is created with it or not at all.
 * It was two transactions and a clean-up delete; a store that failed the owner's insert and then
 * the clean-up too (a full disk does both) left a tenant nobody could sign in to. Here SQLite
 * triggers make exactly those two writes fail, on a real SQLite file.
 */
import type Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPERATOR_EMAIL, PASSWORD, json, login, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let operator: Session;
let db: Database.Database;

beforeAll(async () => {
  h = await startHarness();
  operator = await login(h.app, OPERATOR_EMAIL);
  db = (h.store as unknown as { db: Database.Database }).db;
});

afterAll(async () => {
  await h?.close();
});

const tenantNames = async (): Promise<string[]> => {
  const res = await h.app.inject({ method: 'GET', url: '/api/v1/tenants?limit=1000', headers: operator.headers });
  return json<{ tenants: Array<{ name: string }> }>(res).tenants.map((t) => t.name);
};

describe('a tenant created with its owner', () => {
  it('is not left behind when the owner cannot be written (and neither could a clean-up)', async () => {
    db.exec(`
      CREATE TEMP TRIGGER refuse_accounts BEFORE INSERT ON console_users BEGIN SELECT RAISE(ABORT, 'no space for the owner (test)'); END;
      CREATE TEMP TRIGGER refuse_tenant_deletes BEFORE DELETE ON tenants BEGIN SELECT RAISE(ABORT, 'no space to delete (test)'); END;
    `);
    try {
      const res = await h.app.inject({
        method: 'POST',
        url: '/api/v1/tenants',
        headers: operator.headers,
        payload: { name: 'Halfway', owner: { email: 'owner@halfway.test', password: PASSWORD } },
      });
      expect(res.statusCode).toBeGreaterThanOrEqual(500);
      expect(await tenantNames()).not.toContain('Halfway');
    } finally {
      db.exec('DROP TRIGGER refuse_accounts; DROP TRIGGER refuse_tenant_deletes;');
    }
  });

  it('is created with its owner, who can sign in', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/api/v1/tenants',
      headers: operator.headers,
      payload: { name: 'Whole', owner: { email: 'owner@whole.test', password: PASSWORD } },
    });
    expect(res.statusCode).toBe(201);
    const body = json<{ tenant: { id: string }; owner: { tenant_id: string; console_role: string } }>(res);
    expect(body.owner).toMatchObject({ tenant_id: body.tenant.id, console_role: 'owner' });
    await login(h.app, 'owner@whole.test');
    expect(await tenantNames()).toContain('Whole');
  });
});
