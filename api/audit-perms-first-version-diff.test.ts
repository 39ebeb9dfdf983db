/**
 * `GET /policy-versions/{n}/diff` without `against` compares with the version before; the first
 * version whose content is kept has none. It answered an empty diff (version 1 compared with
 * itself) or a 422 naming `query.against`, a parameter the caller never sent. Now it is compared
 * with nothing: its whole content is added, `settings.before` is null and a note says so.
 */
import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../shared/auth/passwords.js';
import { MIGRATIONS, runMigrations } from '../shared/store/sqlite/migrations.js';
import { SqliteStore } from '../shared/store/sqlite/sqlite-store.js';
import { send } from './test-routes.js';
import { OPERATOR_EMAIL, PASSWORD, createTenant, json, login, startHarness, type Harness, type Session } from './test-support.js';

interface DiffReply {
  diff: {
    from: number;
    to: number;
    settings: { before: object | null; after: { default_effect: string } } | null;
    policies: { added: Array<{ id: string }> };
    rules: { added: Array<{ id: string }> };
    total: number;
  };
  note: string | null;
}

let h: Harness;
let owner: Session;
let tenantId: string;

async function get(url: string) {
  return send(h, owner, { method: 'GET', url: `/api/v1${url}` });
}

beforeAll(async () => {
  h = await startHarness();
  const operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner, tenantId } = await createTenant(h.app, operator, 'FirstDiff'));
});
afterAll(async () => {
  await h?.close();
});

describe('diff of the first kept version', () => {
  it("lists a new tenant's first version as added, with a note, instead of an empty diff", async () => {
    const { first_version } = await h.store.policyVersions.storage(tenantId);
    expect(first_version).not.toBeNull();
    const res = await get(`/policy-versions/${first_version}/diff`);
    expect(res.statusCode, res.body).toBe(200);
    const { diff, note } = json<DiffReply>(res);
    expect(diff.from).toBe(0);
    expect(diff.to).toBe(first_version);
    expect(diff.settings).toMatchObject({ before: null, after: { default_effect: expect.any(String) } });
    expect(diff.total).toBeGreaterThan(0);
    expect(note).toMatch(/first kept version/);
  });

  it('diffs later versions against the one before, and honours an explicit against', async () => {
    const policy = json<{ policy: { id: string } }>(
      await send(h, owner, { method: 'POST', url: '/api/v1/policies', payload: { name: 'Files', severity: 'high' } }),
    ).policy.id;
    const { policy_version } = (await h.store.tenants.get(tenantId))!;
    const latest = json<DiffReply>(await get(`/policy-versions/${policy_version}/diff`));
    expect(latest.note).toBeNull();
    expect(latest.diff.from).toBe(policy_version - 1);
    expect(latest.diff.policies.added.map((p) => p.id)).toEqual([policy]);
    expect(latest.diff.settings).toBeNull();

    const explicit = json<DiffReply>(await get(`/policy-versions/${policy_version}/diff?against=${policy_version}`));
    expect(explicit.diff.total).toBe(0);
    expect(explicit.note).toBeNull();
  });

});

describe("diff of an upgraded tenant's first kept version", () => {
  it('answers what that version holds, not a 422 naming query.against (never sent)', async () => {
    // A database from before the version history (migration 6): the tenant is at version 7 and
    // its history starts there, so version 6 has no content.
    const dir = await mkdtemp(join(tmpdir(), 'edgeplane-upgraded-'));
    const file = join(dir, 'store.db');
    const db = new Database(file);
    db.pragma('foreign_keys = ON');
    runMigrations(db, () => 1, MIGRATIONS.filter((m) => m.version < 6));
    db.exec(`INSERT INTO tenants (id, name, default_effect, policy_version, alert_window_s, created_at, updated_at, plan_id)
      VALUES ('t1', 'acme', 'deny', 7, 300, 1, 1, 'free')`);
    db.exec(`INSERT INTO policies (id, tenant_id, name, severity, created_at, updated_at) VALUES ('p1', 't1', 'no uploads', 'high', 1, 1)`);
    db.close();
    const store = new SqliteStore({ file, now: () => Date.now() });
    await store.init();
    const upgraded = await startHarness({ store });
    try {
      await store.consoleUsers.create({ tenant_id: 't1', email: 'owner@acme.test', console_role: 'owner', password_hash: await hashPassword(PASSWORD) });
      const session = await login(upgraded.app, 'owner@acme.test');
      const res = await send(upgraded, session, { method: 'GET', url: '/api/v1/policy-versions/7/diff' });
      expect(res.statusCode, res.body).toBe(200);
      const { diff, note } = json<DiffReply>(res);
      expect(diff).toMatchObject({ from: 0, to: 7, settings: { before: null, after: { default_effect: 'deny' } } });
      expect(diff.policies.added.map((p) => p.id)).toEqual(['p1']);
      expect(note).toMatch(/version 7 is the first kept version/);
      // An explicit `against` without content still names the parameter the caller sent.
      const explicit = await send(upgraded, session, { method: 'GET', url: '/api/v1/policy-versions/7/diff?against=6' });
      expect(explicit.statusCode).toBe(422);
      expect(explicit.body).toMatch(/query\.against/);
    } finally {
      await upgraded.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
