/**
 * Platform-level repositories: tenants and the shared tower/carrier infrastructure.
 */
import type { Carrier, Tenant, Tower, TowerCredential } from '../../domain.js';
import type { ListOptions, Page, Store, TenantInput, TowerCredentialRecord } from '../port.js';
import { consoleUserInserter } from './auth-repos.js';
import type { SqliteContext, Stmt, WriteScope } from './context.js';
import { insertOrConflict, limitClause, notFound } from './context.js';
import { keyset } from './cursor.js';
import { EntityTable } from './entity-table.js';
import { newTenant } from '../rules/defaults.js';
import { tenantUpdateBumps } from '../rules/policy-version.js';

export function tenantTable(ctx: SqliteContext): EntityTable<Tenant> {
  return new EntityTable<Tenant>(
    ctx,
    'tenants',
    [
      'id',
      'name',
      'plan_id',
      'default_effect',
      'policy_version',
      'alert_window_s',
      'audit_retention_days',
      'created_at',
      'updated_at',
    ],
    'platform',
    ['name', 'plan_id', 'default_effect', 'alert_window_s', 'audit_retention_days'],
  );
}

export function createTenantRepo(ctx: SqliteContext): Store['tenants'] {
  const table = tenantTable(ctx);
  const planExists: Stmt<[string], { id: string }> = ctx.db.prepare('SELECT id FROM plans WHERE id = ?');
  const requirePlan = (planId: string): void => {
    if (!planExists.get(planId)) throw notFound('plan_id', `no such plan: ${planId}`);
  };
  const insertUser = consoleUserInserter(ctx);
  const insertTenant = (input: TenantInput, scope: WriteScope): Tenant => {
    const tenant = newTenant(input, ctx.newId(), ctx.now());
    requirePlan(tenant.plan_id);
    table.insert(tenant);
    scope.recordVersion(tenant.id);
    return tenant;
  };
  return {
    async create(input) {
      return ctx.write((scope) => insertTenant(input, scope));
    },
    async createWithOwner(input, owner) {
      return ctx.write((scope) => {
        const tenant = insertTenant(input, scope);
        return { tenant, owner: insertUser({ tenant_id: tenant.id, email: owner.email, console_role: 'owner', password_hash: owner.password_hash }) };
      });
    },
    async get(id) {
      return table.get(null, id);
    },
    async list(opts) {
      return table.list({}, opts);
    },
    async update(id, patch) {
      return ctx.write((scope) => {
        const before = table.get(null, id);
        if (!before) return null;
        if (patch.plan_id !== undefined) requirePlan(patch.plan_id);
        const after = table.update(null, id, patch);
        if (!tenantUpdateBumps(before, patch)) return after;
        scope.bumpPolicy(id, { kind: 'settings' });
        return table.get(null, id);
      });
    },
    async delete(id) {
      // Every tenant-owned table cascades from tenants, so this is one atomic statement.
      return table.delete(null, id);
    },
  };
}

const TOWER_COLUMNS = [
  'id',
  'name',
  'lat',
  'lon',
  'radius_m',
  'state',
  'agent_version',
  'last_seen',
  'managed_by',
  'retired_at',
  'created_at',
  'updated_at',
] as const;

export { TOWER_COLUMNS };

export function createTowerRepo(ctx: SqliteContext): Store['towers'] {
  const table = new EntityTable<Tower>(ctx, 'towers', TOWER_COLUMNS, 'platform', ['name', 'lat', 'lon', 'radius_m']);
  const cols = TOWER_COLUMNS.map((c) => `t.${c}`).join(', ');
  // An absent agent_version (e.g. the offline last-will) must not erase the version we know.
  const setStatus: Stmt<[string, string | null, number, string, number]> = ctx.db.prepare(
    'UPDATE towers SET state = ?, agent_version = COALESCE(?, agent_version), last_seen = ? WHERE id = ? AND (last_seen IS NULL OR last_seen <= ?)',
  );
  const exists: Stmt<[string]> = ctx.db.prepare('SELECT 1 FROM towers WHERE id = ?');

  return {
    async create(input) {
      const now = ctx.now();
      const row: Tower = {
        id: input.id ?? ctx.newId(),
        name: input.name,
        lat: input.lat ?? null,
        lon: input.lon ?? null,
        radius_m: input.radius_m ?? null,
        state: 'unknown',
        agent_version: null,
        last_seen: null,
        managed_by: null,
        retired_at: null,
        created_at: now,
        updated_at: now,
      };
      insertOrConflict(() => table.insert(row), 'id', 'tower already exists');
      return row;
    },
    async get(id) {
      return table.get(null, id);
    },
    async list(opts) {
      return table.list({}, opts);
    },
    async update(id, patch) {
      return table.update(null, id, patch);
    },
    async delete(id) {
      // Credentials and carrier links cascade; usage history keeps the tower id as plain text.
      return table.delete(null, id);
    },
    async setStatus(towerId, status) {
      // Not changed: either no such tower, or a newer status is stored already.
      return setStatus.run(status.state, status.agent_version, status.at, towerId, status.at).changes > 0 || exists.get(towerId) !== undefined;
    },
    async listSeenByTenant(tenantId, opts?: ListOptions): Promise<Page<Tower>> {
      // tenant_towers is maintained by usage.recordBatch, which is also the only source of
      // tenant-scoped discovered devices, so it covers both ways a tenant's device is seen.
      const plan = keyset(opts, 'towers', 'asc', 'tt.tower_id', 't.');
      const sql = `SELECT ${cols}${plan.select} FROM tenant_towers tt JOIN towers t ON t.id = tt.tower_id
        WHERE tt.tenant_id = ? ${plan.where === null ? '' : `AND ${plan.where}`}
        ORDER BY ${plan.orderBy} ${limitClause(plan.limit + 1)}`;
      return plan.page(ctx.rows<Tower>(sql, [tenantId, ...plan.params]));
    },
  };
}

const CARRIER_COLUMNS = ['id', 'name', 'mcc_mnc', 'created_at', 'updated_at'] as const;

export function createCarrierRepo(ctx: SqliteContext): Store['carriers'] {
  const table = new EntityTable<Carrier>(ctx, 'carriers', CARRIER_COLUMNS, 'platform', ['name', 'mcc_mnc']);
  return {
    async create(input) {
      const now = ctx.now();
      return table.insert({
        id: ctx.newId(),
        name: input.name,
        mcc_mnc: input.mcc_mnc ?? null,
        created_at: now,
        updated_at: now,
      });
    },
    async get(id) {
      return table.get(null, id);
    },
    async list(opts) {
      return table.list({}, opts);
    },
    async update(id, patch) {
      return table.update(null, id, patch);
    },
    async delete(id) {
      return table.delete(null, id);
    },
  };
}

export function createTowerCarrierRepo(ctx: SqliteContext): Store['towerCarriers'] {
  const db = ctx.db;
  const towerExists: Stmt<[string], { id: string }> = db.prepare('SELECT id FROM towers WHERE id = ?');
  const carrierExists: Stmt<[string], { id: string }> = db.prepare('SELECT id FROM carriers WHERE id = ?');
  const link: Stmt<[string, string, number]> = db.prepare(
    `INSERT INTO tower_carriers (tower_id, carrier_id, created_at) VALUES (?, ?, ?)
     ON CONFLICT (tower_id, carrier_id) DO NOTHING`,
  );
  const unlink: Stmt<[string, string]> = db.prepare('DELETE FROM tower_carriers WHERE tower_id = ? AND carrier_id = ?');
  const carriersOf: Stmt<[string], Carrier> = db.prepare(
    `SELECT ${CARRIER_COLUMNS.map((c) => `c.${c}`).join(', ')} FROM tower_carriers tc
     JOIN carriers c ON c.id = tc.carrier_id WHERE tc.tower_id = ? ORDER BY c.id`,
  );
  const towersOf: Stmt<[string], Tower> = db.prepare(
    `SELECT ${TOWER_COLUMNS.map((c) => `t.${c}`).join(', ')} FROM tower_carriers tc
     JOIN towers t ON t.id = tc.tower_id WHERE tc.carrier_id = ? ORDER BY t.id`,
  );
  const requireTower = (id: string): void => {
    if (!towerExists.get(id)) throw notFound('tower_id', 'no such tower');
  };
  const requireCarrier = (id: string): void => {
    if (!carrierExists.get(id)) throw notFound('carrier_id', 'no such carrier');
  };

  return {
    async link(towerId, carrierId) {
      return ctx.write(() => {
        requireTower(towerId);
        requireCarrier(carrierId);
        return link.run(towerId, carrierId, ctx.now()).changes > 0;
      });
    },
    async unlink(towerId, carrierId) {
      requireTower(towerId);
      requireCarrier(carrierId);
      return unlink.run(towerId, carrierId).changes > 0;
    },
    async carriersOfTower(towerId) {
      requireTower(towerId);
      return carriersOf.all(towerId);
    },
    async towersOfCarrier(carrierId) {
      requireCarrier(carrierId);
      return towersOf.all(carrierId);
    },
  };
}

const CREDENTIAL_COLUMNS = 'id, tower_id, created_at, revoked_at, last_used_at';

export function createTowerCredentialRepo(ctx: SqliteContext): Store['towerCredentials'] {
  const db = ctx.db;
  const towerExists: Stmt<[string], { id: string }> = db.prepare('SELECT id FROM towers WHERE id = ?');
  const insert: Stmt<[string, string, string, number]> = db.prepare(
    'INSERT INTO tower_credentials (id, tower_id, secret_hash, created_at) VALUES (?, ?, ?, ?)',
  );
  const get: Stmt<[string], TowerCredentialRecord> = db.prepare(
    `SELECT ${CREDENTIAL_COLUMNS}, secret_hash FROM tower_credentials WHERE id = ?`,
  );
  const listForTower: Stmt<[string], TowerCredential> = db.prepare(
    `SELECT ${CREDENTIAL_COLUMNS} FROM tower_credentials WHERE tower_id = ? ORDER BY id`,
  );
  const revoke: Stmt<[number, string]> = db.prepare(
    'UPDATE tower_credentials SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL',
  );
  const touch: Stmt<[number, string]> = db.prepare('UPDATE tower_credentials SET last_used_at = ? WHERE id = ?');

  return {
    async create(rec) {
      return ctx.write(() => {
        if (!towerExists.get(rec.tower_id)) throw notFound('tower_id', 'no such tower');
        const createdAt = ctx.now();
        insertOrConflict(() => insert.run(rec.id, rec.tower_id, rec.secret_hash, createdAt), 'id', 'credential already exists');
        return { id: rec.id, tower_id: rec.tower_id, created_at: createdAt, revoked_at: null, last_used_at: null };
      });
    },
    async get(id) {
      return get.get(id) ?? null;
    },
    async listForTower(towerId) {
      return listForTower.all(towerId);
    },
    async revoke(id, now) {
      return revoke.run(now, id).changes > 0;
    },
    async touch(id, now) {
      touch.run(now, id);
    },
  };
}
