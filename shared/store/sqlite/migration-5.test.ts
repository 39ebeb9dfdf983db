/**
 * Migration 5 on a database written before it: duplicate role/policy names and device-user
 * e-mails (allowed until then) are renamed or cleared, each change audited, and the store then
 * enforces uniqueness; old alerts read with an empty workflow.
 */
import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isEdgeplaneError } from '../../errors.js';
import { MIGRATIONS, runMigrations } from './migrations.js';
import { SqliteStore } from './sqlite-store.js';

const before5 = MIGRATIONS.filter((m) => m.version < 5);
const T = 1_700_000_000_000;

describe('migration 5: unique natural keys over existing duplicates', () => {
  let dir: string;
  let file: string;
  let store: SqliteStore | null = null;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-migration5-'));
    file = join(dir, 'store.db');
  });
  afterEach(async () => {
    await store?.close();
    store = null;
    await rm(dir, { recursive: true, force: true });
  });

  function seedOldDatabase(): void {
    const db = new Database(file);
    db.pragma('foreign_keys = ON');
    runMigrations(db, () => T, before5);
    const tenant = db.prepare(
      `INSERT INTO tenants (id, name, plan_id, default_effect, policy_version, alert_window_s, created_at, updated_at)
       VALUES (?, ?, 'free', 'allow', 1, 300, ?, ?)`,
    );
    tenant.run('t1', 'acme', T, T);
    tenant.run('t2', 'globex', T, T);
    const role = db.prepare('INSERT INTO roles (id, tenant_id, name, description, created_at, updated_at) VALUES (?, ?, ?, NULL, ?, ?)');
    role.run('r1', 't1', 'Engineer', T, T);
    role.run('r2', 't1', 'engineer', T + 1, T + 1);
    role.run('r3', 't1', 'ENGINEER', T + 2, T + 2);
    // Taken already: the renames must skip it.
    role.run('r4', 't1', 'engineer (2)', T + 3, T + 3);
    role.run('r5', 't2', 'engineer', T, T);
    const policy = db.prepare(
      "INSERT INTO policies (id, tenant_id, name, description, severity, created_at, updated_at) VALUES (?, ?, ?, NULL, 'medium', ?, ?)",
    );
    policy.run('p1', 't1', 'DLP', T, T);
    policy.run('p2', 't1', 'dlp ', T + 1, T + 1);
    const user = db.prepare('INSERT INTO users (id, tenant_id, name, email, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)');
    user.run('u1', 't1', 'Ada', 'ada@acme.example', T, T);
    user.run('u2', 't1', 'Ada again', 'ADA@acme.example', T + 1, T + 1);
    user.run('u3', 't1', 'No mail', null, T, T);
    user.run('u4', 't2', 'Ada of globex', 'ada@acme.example', T, T);
    db.prepare(
      `INSERT INTO alerts (id, tenant_id, device_id, user_id, rule_id, policy_id, app, action, tower_id, severity, count, first_seen, last_seen, status)
       VALUES ('a1', 't1', 'd1', NULL, 'rule-1', 'p1', 'slack', 'upload', 'T1', 'high', 2, ?, ?, 'open')`,
    ).run(T, T);
    db.close();
  }

  it('keeps the oldest name, renames the rest with the first free suffix, clears repeated e-mails, and audits each change', async () => {
    seedOldDatabase();
    store = new SqliteStore({ file, now: () => T + 100 });
    await store.init();

    const roleNames = Object.fromEntries((await store.roles.list('t1')).items.map((r) => [r.id, r.name]));
    expect(roleNames).toEqual({ r1: 'Engineer', r2: 'engineer (3)', r3: 'ENGINEER (4)', r4: 'engineer (2)' });
    expect((await store.roles.list('t2')).items.map((r) => r.name)).toEqual(['engineer']);
    expect((await store.policies.list('t1')).items.map((p) => [p.id, p.name])).toEqual([
      ['p1', 'DLP'],
      ['p2', 'dlp (2)'],
    ]);
    expect((await store.users.list('t1')).items.map((u) => [u.id, u.email])).toEqual([
      ['u1', 'ada@acme.example'],
      ['u2', null],
      ['u3', null],
    ]);
    expect((await store.users.list('t2')).items.map((u) => u.email)).toEqual(['ada@acme.example']);

    const audit = (await store.audit.list('t1', { limit: 100 })).items;
    expect(audit.map((a) => [a.action, a.resource_id, a.actor_kind, a.before, a.after]).sort()).toEqual(
      [
        ['roles.deduplicate', 'r2', 'system', { name: 'engineer' }, { name: 'engineer (3)' }],
        ['roles.deduplicate', 'r3', 'system', { name: 'ENGINEER' }, { name: 'ENGINEER (4)' }],
        ['policies.deduplicate', 'p2', 'system', { name: 'dlp ' }, { name: 'dlp (2)' }],
        ['users.deduplicate', 'u2', 'system', { email: 'ADA@acme.example' }, { email: null }],
      ].sort(),
    );
    expect((await store.audit.list('t2')).items).toEqual([]);

    // From now on the keys hold.
    const err = await store.roles.create('t1', { name: 'ENGINEER (3)' }).catch((e: unknown) => e);
    expect(isEdgeplaneError(err) && err.code).toBe('CONFLICT');
    expect((await store.roles.findByName('t1', 'engineer'))?.id).toBe('r1');
    expect((await store.users.findByEmail('t1', 'Ada@Acme.example'))?.id).toBe('u1');
    expect(await store.alerts.get('t1', 'a1')).toMatchObject({ status: 'open', count: 2, acknowledged_by: null, assigned_to: null, note: null });
  });

  it('is a no-op on a database without duplicates', async () => {
    store = new SqliteStore({ file });
    await store.init();
    const t = await store.tenants.create({ name: 'fresh' });
    await store.roles.create(t.id, { name: 'a' });
    expect((await store.audit.list(t.id)).items).toEqual([]);
  });
});
