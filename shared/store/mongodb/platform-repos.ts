/**
 * Platform-level repositories: tenants and the shared tower/carrier infrastructure.
 */
import type { Carrier, Tenant, Tower, TowerCredential } from '../../domain.js';
import type { Store, TenantInput, TowerCredentialRecord } from '../port.js';
import { insertConsoleUser } from './auth-repos.js';
import { newTenant } from '../rules/defaults.js';
import { conflict, notFound } from '../rules/errors.js';
import { tenantUpdateBumps } from '../rules/policy-version.js';
import {
  C,
  TENANT_OWNED,
  type CarrierDoc,
  type ConsoleUserDoc,
  type CredentialDoc,
  type RefreshTokenDoc,
  type TenantDoc,
  type TenantTowerDoc,
  type TowerCarrierDoc,
  type TowerDoc,
  type UsageCounterDoc,
} from './collections.js';
import { insertChecked, insertOrConflict, strip, type MongoContext } from './context.js';
import type { Document, SessionLike } from './db-like.js';
import { MongoEntity } from './entity.js';
import { COUNTER_SLOTS, compositeKey, counterSlotKey } from './keys.js';

export const toTenant = (d: TenantDoc): Tenant => strip(d);
export const toTower = (d: TowerDoc): Tower => {
  const t = strip(d);
  // Documents written before migration 7 may lack the carrier fields.
  return { ...t, managed_by: t.managed_by ?? null, retired_at: t.retired_at ?? null };
};
const toCarrier = (d: CarrierDoc): Carrier => strip(d);

/** A guard write on a platform row: it conflicts with that row's concurrent deletion. */
async function requireGuarded(
  ctx: MongoContext,
  name: typeof C.plans | typeof C.towers | typeof C.carriers,
  id: string,
  session: SessionLike,
  missing: () => Error,
): Promise<void> {
  const res = await ctx.coll<Document & { _id: string }>(name).updateOne({ _id: id }, { $inc: { write_guard: 1 } }, { session });
  if (res.matchedCount === 0) throw missing();
}

export function createTenantRepo(ctx: MongoContext): Store['tenants'] {
  const table = new MongoEntity<TenantDoc, Tenant>(
    ctx,
    C.tenants,
    'platform',
    ['name', 'plan_id', 'default_effect', 'alert_window_s', 'audit_retention_days'],
    toTenant,
  );
  const requirePlan = (planId: string, session: SessionLike): Promise<void> =>
    requireGuarded(ctx, C.plans, planId, session, () => notFound('plan_id', `no such plan: ${planId}`));

  /** The tenant and its usage counter slots, inside the caller's transaction. */
  const insertTenant = async (input: TenantInput, session: SessionLike): Promise<Tenant> => {
    const tenant = newTenant(input, ctx.newId(), ctx.now());
    await requirePlan(tenant.plan_id, session);
    await table.coll.insertOne({ _id: tenant.id, ...tenant }, { session });
    // Created with the tenant so every usage batch writes one: a deletion then conflicts with
    // a concurrent batch instead of leaving its rows behind (usage-repo.ts).
    const slots: UsageCounterDoc[] = Array.from({ length: COUNTER_SLOTS }, (_, slot) => ({
      _id: counterSlotKey(tenant.id, slot),
      tenant_id: tenant.id,
      allow: 0,
      deny: 0,
    }));
    await ctx.coll<UsageCounterDoc>(C.usageCounters).insertMany(slots, { session });
    return tenant;
  };
  return {
    async create(input) {
      return ctx.write(async ({ session, recordVersion }) => {
        const tenant = await insertTenant(input, session);
        recordVersion(tenant.id);
        return tenant;
      });
    },
    async createWithOwner(input, owner) {
      return ctx.write(async ({ session, recordVersion }) => {
        const tenant = await insertTenant(input, session);
        recordVersion(tenant.id);
        return { tenant, owner: await insertConsoleUser(ctx, session, { tenant_id: tenant.id, email: owner.email, console_role: 'owner', password_hash: owner.password_hash }) };
      });
    },
    get: (id) => table.get(null, id),
    list: (opts) => table.list({}, opts),
    async update(id, patch) {
      return ctx.write(async ({ session, bumpPolicy }) => {
        const before = await table.get(null, id, session);
        if (!before) return null;
        if (patch.plan_id !== undefined) await requirePlan(patch.plan_id, session);
        const after = await table.update(null, id, patch, session);
        if (!tenantUpdateBumps(before, patch)) return after;
        await bumpPolicy(id, { kind: 'settings' });
        return table.get(null, id, session);
      });
    },
    async delete(id) {
      // Everything the tenant owns goes in the same transaction (SQLite: ON DELETE CASCADE).
      // A very large tenant should be purged (purgeUsage, audit.purge) before it is deleted, to
      // keep this transaction within MongoDB's transaction limits.
      return ctx.write(async ({ session }) => {
        if (!(await table.delete(null, id, session))) return false;
        for (const name of TENANT_OWNED) await ctx.coll<Document>(name).deleteMany({ tenant_id: id }, { session });
        const consoleUsers = ctx.coll<ConsoleUserDoc>(C.consoleUsers);
        const people = await consoleUsers.find({ tenant_id: id }, { session }).toArray();
        if (people.length > 0) {
          const ids = people.map((p) => p._id);
          await ctx.coll<RefreshTokenDoc>(C.refreshTokens).deleteMany({ user_id: { $in: ids } }, { session });
          await consoleUsers.deleteMany({ tenant_id: id }, { session });
        }
        return true;
      });
    },
  };
}

export function createTowerRepo(ctx: MongoContext): Store['towers'] {
  const table = new MongoEntity<TowerDoc, Tower>(ctx, C.towers, 'platform', ['name', 'lat', 'lon', 'radius_m'], toTower);
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
      await insertOrConflict(() => table.coll.insertOne({ _id: row.id, ...row }), () => conflict('id', 'tower already exists'));
      return row;
    },
    get: (id) => table.get(null, id),
    list: (opts) => table.list({}, opts),
    update: (id, patch) => table.update(null, id, patch),
    async delete(id) {
      // Credentials and carrier links go with it; usage history keeps the tower id as plain text.
      return ctx.write(async ({ session }) => {
        if (!(await table.delete(null, id, session))) return false;
        await ctx.coll<CredentialDoc>(C.credentials).deleteMany({ tower_id: id }, { session });
        await ctx.coll<TowerCarrierDoc>(C.towerCarriers).deleteMany({ tower_id: id }, { session });
        await ctx.coll<{ _id: string }>(C.towerPolygons).deleteMany({ _id: id }, { session });
        await ctx.coll<Document>(C.radiusClients).deleteMany({ tower_id: id }, { session });
        return true;
      });
    },
    async setStatus(towerId, status) {
      // An absent agent_version (e.g. the offline last-will) must not erase the version we know.
      const set: Partial<Tower> = { state: status.state, last_seen: status.at };
      if (status.agent_version !== null) set.agent_version = status.agent_version;
      // Not matched: either no such tower, or a newer status is stored already.
      const r = await table.coll.updateOne({ _id: towerId, $or: [{ last_seen: null }, { last_seen: { $lte: status.at } }] }, { $set: set });
      return r.matchedCount > 0 || (await table.coll.findOne({ _id: towerId })) !== null;
    },
    async listSeenByTenant(tenantId, opts) {
      // tenant_towers is maintained by usage.recordBatch, which is also the only source of
      // tenant-scoped discovered devices, so it covers both ways a tenant's device is seen.
      // A tenant is seen at a bounded set of towers, so the page is read over that set.
      const seen = await ctx.coll<TenantTowerDoc>(C.tenantTowers).find({ tenant_id: tenantId }).toArray();
      const ids = seen.map((s) => s.tower_id);
      return ctx.listPage(table.coll, { _id: { $in: ids } }, opts, 'towers', 'asc', toTower);
    },
  };
}

export function createCarrierRepo(ctx: MongoContext): Store['carriers'] {
  const table = new MongoEntity<CarrierDoc, Carrier>(ctx, C.carriers, 'platform', ['name', 'mcc_mnc'], toCarrier);
  return {
    async create(input) {
      const now = ctx.now();
      const row: Carrier = { id: ctx.newId(), name: input.name, mcc_mnc: input.mcc_mnc ?? null, created_at: now, updated_at: now };
      await table.coll.insertOne({ _id: row.id, ...row });
      return row;
    },
    get: (id) => table.get(null, id),
    list: (opts) => table.list({}, opts),
    update: (id, patch) => table.update(null, id, patch),
    async delete(id) {
      return ctx.write(async ({ session }) => {
        if (!(await table.delete(null, id, session))) return false;
        await ctx.coll<TowerCarrierDoc>(C.towerCarriers).deleteMany({ carrier_id: id }, { session });
        // As SQLite's foreign keys do: its credentials and statements go, its towers return to operators.
        await ctx.coll<Document>(C.carrierCredentials).deleteMany({ carrier_id: id }, { session });
        await ctx.coll<Document>(C.deviceMetadata).deleteMany({ carrier_id: id }, { session });
        await ctx.coll<TowerDoc>(C.towers).updateMany({ managed_by: id }, { $set: { managed_by: null } }, { session });
        return true;
      });
    },
  };
}

export function createTowerCarrierRepo(ctx: MongoContext): Store['towerCarriers'] {
  const links = ctx.coll<TowerCarrierDoc>(C.towerCarriers);
  const towers = ctx.coll<TowerDoc>(C.towers);
  const carriers = ctx.coll<CarrierDoc>(C.carriers);
  const requireTower = async (id: string): Promise<void> => {
    if (!(await towers.findOne({ _id: id }))) throw notFound('tower_id', 'no such tower');
  };
  const requireCarrier = async (id: string): Promise<void> => {
    if (!(await carriers.findOne({ _id: id }))) throw notFound('carrier_id', 'no such carrier');
  };
  return {
    async link(towerId, carrierId) {
      return ctx.write(async ({ session }) => {
        await requireGuarded(ctx, C.towers, towerId, session, () => notFound('tower_id', 'no such tower'));
        await requireGuarded(ctx, C.carriers, carrierId, session, () => notFound('carrier_id', 'no such carrier'));
        const _id = compositeKey(towerId, carrierId);
        if (await links.findOne({ _id }, { session })) return false;
        await insertChecked(() => links.insertOne({ _id, tower_id: towerId, carrier_id: carrierId, created_at: ctx.now() }, { session }));
        return true;
      });
    },
    async unlink(towerId, carrierId) {
      await requireTower(towerId);
      await requireCarrier(carrierId);
      return (await links.deleteOne({ _id: compositeKey(towerId, carrierId) })).deletedCount > 0;
    },
    async carriersOfTower(towerId) {
      await requireTower(towerId);
      const ids = (await links.find({ tower_id: towerId }).toArray()).map((l) => l.carrier_id);
      return (await carriers.find({ _id: { $in: ids } }, { sort: { _id: 1 } }).toArray()).map(toCarrier);
    },
    async towersOfCarrier(carrierId) {
      await requireCarrier(carrierId);
      const ids = (await links.find({ carrier_id: carrierId }).toArray()).map((l) => l.tower_id);
      return (await towers.find({ _id: { $in: ids } }, { sort: { _id: 1 } }).toArray()).map(toTower);
    },
  };
}

const toCredential = (d: CredentialDoc): TowerCredential => strip(d, 'secret_hash');

export function createTowerCredentialRepo(ctx: MongoContext): Store['towerCredentials'] {
  const creds = ctx.coll<CredentialDoc>(C.credentials);
  return {
    async create(rec) {
      return ctx.write(async ({ session }) => {
        await requireGuarded(ctx, C.towers, rec.tower_id, session, () => notFound('tower_id', 'no such tower'));
        const row: TowerCredentialRecord = {
          id: rec.id,
          tower_id: rec.tower_id,
          secret_hash: rec.secret_hash,
          created_at: ctx.now(),
          revoked_at: null,
          last_used_at: null,
        };
        await insertOrConflict(() => creds.insertOne({ _id: row.id, ...row }, { session }), () => conflict('id', 'credential already exists'));
        const { secret_hash: _hash, ...credential } = row;
        return credential;
      });
    },
    async get(id) {
      const doc = await creds.findOne({ _id: id });
      return doc ? strip(doc) : null;
    },
    async listForTower(towerId) {
      return (await creds.find({ tower_id: towerId }, { sort: { _id: 1 } }).toArray()).map(toCredential);
    },
    async revoke(id, now) {
      return (await creds.updateOne({ _id: id, revoked_at: null }, { $set: { revoked_at: now } })).matchedCount > 0;
    },
    async touch(id, now) {
      await creds.updateOne({ _id: id }, { $set: { last_used_at: now } });
    },
  };
}

