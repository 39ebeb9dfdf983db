/**
 * The full store contract against the MongoDB adapter over the in-memory BOUNDARY DOUBLE
 * (memory-mongo-double.ts): the adapter's logic runs in every test run, on machines where no
 * MongoDB server can. The same suite runs against a real server in mongo-store.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isEdgeplaneError } from '../../errors.js';
import { createIdFactory } from '../../ids.js';
import type { DecidedUsage } from '../port.js';
import { describeStoreContract, recordingHooks } from '../store.contract.js';
import { INDEXES, INGEST_INDEXES, NATURAL_KEY_INDEXES, TENANT_OWNED } from './collections.js';
import type { CollectionLike, Document, MongoDbLike } from './db-like.js';
import { MemoryMongo } from './memory-mongo-double.js';
import { MongoStore, databaseOf, type MongoConnector, type MongoStoreOptions } from './mongo-store.js';

describeStoreContract('mongodb over the in-memory boundary double', async () => {
  const server = new MemoryMongo();
  const { hooks, policyChanges } = recordingHooks();
  const store = new MongoStore({ url: 'mongodb://double/contract', hooks, connector: server.connector });
  await store.init();
  return { store, hooks: { policyChanges }, cleanup: () => store.close() };
});

describe('MongoStore specifics (over the boundary double)', () => {
  const DB = 'specifics';
  let server: MemoryMongo;
  const open: MongoStore[] = [];

  const openStore = async (opts: Partial<MongoStoreOptions> = {}): Promise<MongoStore> => {
    const store = new MongoStore({ url: `mongodb://double/${DB}`, connector: server.connector, ...opts });
    await store.init();
    open.push(store);
    return store;
  };

  beforeEach(() => {
    server = new MemoryMongo();
  });
  afterEach(async () => {
    for (const store of open.splice(0)) await store.close();
  });

  it('does no I/O before init and refuses use outside init..close', async () => {
    const connect = vi.fn(server.connector);
    const store = new MongoStore({ url: 'mongodb://double/x', connector: connect });
    expect(connect).not.toHaveBeenCalled();
    expect(() => store.tenants).toThrow(/init/);
    await store.init();
    expect(connect).toHaveBeenCalledWith('mongodb://double/x', 'x');
    await store.close();
    expect(() => store.tenants).toThrow(/init/);
  });

  it('takes the database from dbName, else the URL path, else edgeplane', () => {
    expect(databaseOf('mongodb://h1:27017,h2/ops?replicaSet=rs0')).toBe('ops');
    expect(databaseOf('mongodb+srv://user:pw@cluster.example.net/prod%20db')).toBe('prod db');
    expect(databaseOf('mongodb://localhost:27017/?replicaSet=rs0')).toBeNull();
    expect(databaseOf('mongodb://localhost')).toBeNull();
  });

  it('sets up the schema idempotently: plans seeded once, operator edits kept, newer schemas refused', async () => {
    let clock = 1_000;
    const first = await openStore({ now: () => clock });
    await first.plans.update('free', { name: 'Starter' });
    clock = 2_000;
    const second = await openStore({ now: () => clock });
    expect((await second.plans.list()).items.map((p) => [p.id, p.name, p.created_at])).toEqual([
      ['free', 'Starter', 1_000],
      ['premium', 'Premium', 1_000],
    ]);
    expect(server.peek(DB, 'schema_migrations', 1)).toMatchObject({ applied_at: 1_000 });
    const db = server.db(DB);
    await db.collection<{ _id: number; name: string; applied_at: number }>('schema_migrations').insertOne({ _id: 9999, name: 'future', applied_at: 0 });
    await expect(new MongoStore({ url: `mongodb://double/${DB}`, connector: server.connector }).init()).rejects.toThrow(/newer than this build/);
  });

  it('uses the injected clock and id factory', async () => {
    const store = await openStore({ now: () => 42, newId: () => 'fixed-id' });
    expect(await store.tenants.create({ name: 'a' })).toMatchObject({ id: 'fixed-id', created_at: 42, updated_at: 42 });
  });

  it('announces a policy change only after it is committed', async () => {
    const seen: unknown[] = [];
    const store = await openStore({
      hooks: { onPolicyChanged: (tenantId) => seen.push(server.peek(DB, 'tenants', tenantId)?.['policy_version']) },
    });
    const tenant = await store.tenants.create({ name: 'a' });
    await store.policies.create(tenant.id, { name: 'p' });
    expect(seen).toEqual([tenant.policy_version + 1]);
  });

  it('a listener that throws does not make a committed write look failed; a refused write neither bumps nor announces', async () => {
    const { hooks, policyChanges } = recordingHooks();
    const store = await openStore({
      hooks: {
        onPolicyChanged: (tenantId, version, scope) => {
          hooks.onPolicyChanged?.(tenantId, version, scope);
          throw new Error('listener bug');
        },
      },
    });
    const tenant = await store.tenants.create({ name: 'a' });
    const policy = await store.policies.create(tenant.id, { name: 'p' });
    expect(await store.policies.get(tenant.id, policy.id)).toEqual(policy);
    const heard = policyChanges.length;
    await expect(store.rules.create(tenant.id, { policy_id: 'ghost', app: '*', action: '*', permission: 'deny' })).rejects.toSatisfy(
      isEdgeplaneError,
    );
    expect(policyChanges.length).toBe(heard);
    expect((await store.tenants.get(tenant.id))?.policy_version).toBe(tenant.policy_version + 1);
  });

  it('a batch failing half-way leaves nothing written, then goes through in full', async () => {
    const ids = createIdFactory();
    let failAlerts = true;
    // Fault injection at the boundary: the alerts insert fails after usage rows were inserted.
    const connector: MongoConnector = async (url, dbName) => {
      const { db, close } = await server.connector(url, dbName);
      const faulty: MongoDbLike = {
        client: db.client,
        collection<T extends Document>(name: string): CollectionLike<T> {
          const coll = db.collection<T>(name);
          if (name !== 'alerts') return coll;
          return new Proxy(coll, {
            get(target, prop, receiver) {
              if (prop === 'insertMany' && failAlerts) return async () => Promise.reject(new Error('injected: alerts insert failed'));
              const value: unknown = Reflect.get(target, prop, receiver);
              return typeof value === 'function' ? value.bind(target) : value;
            },
          });
        },
      };
      return { db: faulty, close };
    };
    const store = await openStore({ connector });
    const tenant = await store.tenants.create({ name: 'a' });
    const policy = await store.policies.create(tenant.id, { name: 'p' });
    const rule = await store.rules.create(tenant.id, { policy_id: policy.id, app: '*', action: '*', permission: 'deny' });
    const event = (i: number): DecidedUsage => ({
      id: ids(),
      tenant_id: tenant.id,
      tower_id: 'tw',
      batch_id: 'b',
      device_id: i % 2 === 0 ? `dev-${i}` : 'stranger',
      user_id: null,
      app: 'slack',
      action: 'upload',
      bytes: 1,
      ts: 1,
      received_at: 1,
      effect: 'deny',
      reason: i % 2 === 0 ? 'rule' : 'unknown_device',
      rule_id: i % 2 === 0 ? rule.id : null,
      policy_id: i % 2 === 0 ? policy.id : null,
      policy_version: 1,
      severity: 'high',
    });
    const records = Array.from({ length: 100 }, (_, i) => event(i));
    const input = { tenant_id: tenant.id, tower_id: 'tw', batch_id: 'b', now: 1, alert_window_s: 60, records };
    await expect(store.usage.recordBatch(input)).rejects.toThrow(/injected/);
    const counts = (): number[] =>
      ['usage', 'alerts', 'alert_keys', 'discovered_devices', 'tenant_towers'].map((c) => server.documentCount(DB, c));
    expect(counts()).toEqual([0, 0, 0, 0, 0]);
    expect((await store.dashboard(tenant.id)).usage_total).toBe(0);

    failAlerts = false;
    const ok = await store.usage.recordBatch(input);
    expect(ok).toMatchObject({ inserted: 100, duplicates: 0 });
    expect(ok.alerts_opened).toHaveLength(50);
    expect(ok.discovered).toEqual([expect.objectContaining({ device_id: 'stranger', count: 50 })]);
    expect(counts()).toEqual([100, 50, 50, 1, 1]);
  });

  it('stores usage under a tenant-qualified _id, so two tenants may reuse an event id', async () => {
    const store = await openStore();
    const [a, b] = [await store.tenants.create({ name: 'a' }), await store.tenants.create({ name: 'b' })];
    const record = (tenant_id: string, effect: 'allow' | 'deny'): DecidedUsage => ({
      id: 'same-event-id',
      tenant_id,
      tower_id: 'tw',
      batch_id: 'b',
      device_id: 'd',
      user_id: null,
      app: 'slack',
      action: 'upload',
      bytes: null,
      ts: 1,
      received_at: 1,
      effect,
      reason: 'default',
      rule_id: null,
      policy_id: null,
      policy_version: 1,
      severity: null,
    });
    const batch = (tenant_id: string, effect: 'allow' | 'deny') => ({
      tenant_id,
      tower_id: 'tw',
      batch_id: 'b',
      now: 1,
      alert_window_s: 60,
      records: [record(tenant_id, effect)],
    });
    expect(await store.usage.recordBatch(batch(a.id, 'allow'))).toMatchObject({ inserted: 1, duplicates: 0 });
    // Tenant b's tower reuses the id: a new event for b, and a's decision is never answered to b.
    expect(await store.usage.recordBatch(batch(b.id, 'deny'))).toMatchObject({ inserted: 1, duplicates: 0, stored_decisions: [] });
    expect((await store.usage.recordBatch(batch(b.id, 'allow'))).stored_decisions.map((d) => d.effect)).toEqual(['deny']);
    expect(server.peek(DB, 'usage', `${a.id}:same-event-id`)).toMatchObject({ tenant_id: a.id, effect: 'allow' });
    expect(server.peek(DB, 'usage', `${b.id}:same-event-id`)).toMatchObject({ tenant_id: b.id, effect: 'deny' });
    expect(server.peek(DB, 'usage', 'same-event-id')).toBeNull();
  });

  it('concurrent deliveries of one batch store each event once', async () => {
    const store = await openStore();
    const tenant = await store.tenants.create({ name: 'a' });
    const ids = createIdFactory();
    const records = Array.from({ length: 20 }, (): DecidedUsage => ({
      id: ids(),
      tenant_id: tenant.id,
      tower_id: 'tw',
      batch_id: 'b',
      device_id: 'd',
      user_id: null,
      app: 'slack',
      action: 'upload',
      bytes: 1,
      ts: 1,
      received_at: 1,
      effect: 'allow',
      reason: 'default',
      rule_id: null,
      policy_id: null,
      policy_version: 1,
      severity: null,
    }));
    const input = { tenant_id: tenant.id, tower_id: 'tw', batch_id: 'b', now: 1, alert_window_s: 60, records };
    const results = await Promise.all([1, 2, 3, 4].map(() => store.usage.recordBatch(input)));
    expect(results.map((r) => r.inserted).sort((x, y) => x - y)).toEqual([0, 0, 0, 20]);
    expect(server.documentCount(DB, 'usage')).toBe(20);
    expect((await store.dashboard(tenant.id)).usage_total).toBe(20);
  });

  it("an assignment writes its assignee's account, so on a server it conflicts with the account's delete", async () => {
    // Snapshot isolation lets two transactions that write different documents both commit: an
    // assignment that only read the account could commit beside the account's delete (which
    // unassigns only the alerts it sees), leaving an alert assigned to a deleted account. The
    // double serialises transactions, so the conflict itself shows on a real server only; here
    // the guard write that causes it is checked.
    const store = await openStore();
    const tenant = await store.tenants.create({ name: 'a' });
    const ana = await store.consoleUsers.create({ tenant_id: tenant.id, email: 'ana@a.test', console_role: 'analyst', password_hash: 'h' });
    const opened = await store.usage.recordBatch({
      tenant_id: tenant.id,
      tower_id: 'tw',
      batch_id: 'b',
      now: 1,
      alert_window_s: 60,
      records: [
        {
          id: 'e1',
          tenant_id: tenant.id,
          tower_id: 'tw',
          batch_id: 'b',
          device_id: 'd',
          user_id: null,
          app: 'slack',
          action: 'upload',
          bytes: null,
          ts: 1,
          received_at: 1,
          effect: 'deny',
          reason: 'rule',
          rule_id: 'r1',
          policy_id: 'p1',
          policy_version: 1,
          severity: 'high',
        },
      ],
    });
    const alert = opened.alerts_opened[0]!;
    const guard = () => (server.peek(DB, 'console_users', ana.id)?.['write_guard'] as number | undefined) ?? 0;
    const before = guard();
    await store.alerts.act(tenant.id, alert.id, { kind: 'assign', assignee: ana.id, by: null, at: 2 });
    expect(guard()).toBe(before + 1);
    expect(await store.consoleUsers.get(ana.id)).toEqual(ana);
  });

  it('lets a second store on the same database read committed writes', async () => {
    const writer = await openStore();
    const reader = await openStore();
    const tenant = await writer.tenants.create({ name: 'a' });
    await writer.devices.create(tenant.id, { id: 'imei-1', name: 'phone' });
    expect(await reader.devices.tenantOf('imei-1')).toBe(tenant.id);
  });

  it('schema version 2: drops the platform-wide e-mail index and reads older accounts as enabled', async () => {
    const db = server.db(DB);
    type Raw = Document & { _id: string | number };
    const users = db.collection<Raw>('console_users');
    await db.collection<Raw>('schema_migrations').insertOne({ _id: 1, name: 'collections, indexes, seed plans', applied_at: 1 });
    await users.createIndexes([{ key: { email: 1 }, unique: true }]);
    await db.collection<Raw>('tenants').insertMany([
      { _id: 't1', id: 't1', name: 'a', plan_id: 'free', default_effect: 'allow', policy_version: 1, alert_window_s: 300, audit_retention_days: 365, created_at: 1, updated_at: 1 },
      { _id: 't2', id: 't2', name: 'b', plan_id: 'free', default_effect: 'allow', policy_version: 1, alert_window_s: 300, audit_retention_days: 365, created_at: 1, updated_at: 1 },
    ]);
    await users.insertOne({ _id: 'u1', id: 'u1', tenant_id: 't1', email: 'ann@a.test', console_role: 'owner', password_hash: 'h', created_at: 1, updated_at: 1 });

    const store = await openStore();
    expect(server.peek(DB, 'schema_migrations', 2)).not.toBeNull();
    expect(await store.consoleUsers.get('u1')).toMatchObject({ disabled_at: null, session_version: 0 });
    await expect(
      store.consoleUsers.create({ tenant_id: 't2', email: 'ann@a.test', console_role: 'owner', password_hash: 'h2' }),
    ).resolves.toMatchObject({ tenant_id: 't2' });
    await expect(store.consoleUsers.create({ tenant_id: 't1', email: 'Ann@a.test', console_role: 'viewer', password_hash: 'x' })).rejects.toMatchObject({
      code: 'CONFLICT',
    });
    // Running the migrations again (another process starting) finds nothing left to drop.
    await expect(openStore()).resolves.toBeDefined();
  });

  it("schema version 6: starts each existing tenant's history at its current version, once", async () => {
    const db = server.db(DB);
    type Raw = Document & { _id: string | number };
    await db.collection<Raw>('schema_migrations').insertMany([
      { _id: 1, name: 'collections, indexes, seed plans', applied_at: 1 },
      { _id: 2, name: 'console e-mails unique per tenant', applied_at: 1 },
    ]);
    await db.collection<Raw>('tenants').insertOne({ _id: 't1', id: 't1', name: 'a', plan_id: 'free', default_effect: 'deny', policy_version: 9, alert_window_s: 300, audit_retention_days: 365, created_at: 1, updated_at: 1 });
    await db.collection<Raw>('devices').insertOne({ _id: 'd1', id: 'd1', tenant_id: 't1', user_id: null, name: 'p', os: null, created_at: 1, updated_at: 1 });

    const store = await openStore();
    expect(server.peek(DB, 'schema_migrations', 6)).not.toBeNull();
    expect(await store.policyVersions.storage('t1')).toMatchObject({ versions: 1, first_version: 9, entries: 2 });
    expect((await store.policyVersions.content('t1', 9))!).toMatchObject({ settings: { default_effect: 'deny' }, devices: [{ id: 'd1', user_id: null }] });
    // Another process starting finds every history started.
    await openStore();
    expect(await store.policyVersions.storage('t1')).toMatchObject({ versions: 1, entries: 2 });
  });

  it('indexes every tenant-owned collection tenant-first, except the documented cross-tenant scans', () => {
    const crossTenant = new Set(['device_sessions:tower_id,status', 'commands:status,tower_id,_id', 'api_keys:secret_hash']);
    for (const name of TENANT_OWNED) {
      const specs = [...(INDEXES[name] ?? []), ...(NATURAL_KEY_INDEXES[name] ?? []), ...(INGEST_INDEXES[name] ?? [])];
      expect(specs.length, name).toBeGreaterThan(0);
      for (const spec of specs) {
        const fields = Object.keys(spec.key);
        if (crossTenant.has(`${name}:${fields.join(',')}`)) continue;
        expect(fields[0], `${name} ${fields.join(',')}`).toBe('tenant_id');
      }
    }
  });
});
