/**
 * Registered devices. A device id is what towers report, so it is unique across the platform:
 * device_registry (_id = device id, unsharded) enforces that and answers the pipeline's
 * device → tenant lookups, while devices themselves are tenant-owned (sharded by tenant).
 */
import type { Device } from '../../domain.js';
import type { Store } from '../port.js';
import { conflict } from '../rules/errors.js';
import { BUMPS, deviceUpdateBumps } from '../rules/policy-version.js';
import { requireRoomForDevice } from '../rules/platform.js';
import { C, type DeviceDoc, type DeviceRegistryDoc, type PlanDoc, type TenantDoc } from './collections.js';
import { insertOrConflict, strip, type MongoContext } from './context.js';
import type { Document, SessionLike } from './db-like.js';
import { MongoEntity, type TenantRefs } from './entity.js';

export function createDeviceRepo(ctx: MongoContext, refs: TenantRefs): Store['devices'] {
  const table = new MongoEntity<DeviceDoc, Device>(ctx, C.devices, 'tenant', ['user_id', 'name', 'os'], (d) => strip(d));
  const registry = ctx.coll<DeviceRegistryDoc>(C.deviceRegistry);

  /** Inside the insert's transaction; two creates racing for the last slot both guard the tenant. */
  const requireRoom = async (session: SessionLike, tenantId: string): Promise<void> => {
    const tenant = await ctx.coll<TenantDoc>(C.tenants).findOne({ _id: tenantId }, { session });
    if (!tenant) return;
    const plan = await ctx.coll<PlanDoc>(C.plans).findOne({ _id: tenant.plan_id }, { session });
    if (!plan) return;
    requireRoomForDevice(plan, await table.coll.countDocuments({ tenant_id: tenantId }, { session }));
  };

  return {
    async create(tenantId, input) {
      return ctx.write(async ({ session, bumpPolicy }) => {
        await refs.requireTenant(session, tenantId);
        const userId = input.user_id ?? null;
        if (userId !== null) await refs.requireUser(session, tenantId, userId);
        await requireRoom(session, tenantId);
        const now = ctx.now();
        const row: Device = {
          id: input.id ?? ctx.newId(),
          tenant_id: tenantId,
          user_id: userId,
          name: input.name,
          os: input.os ?? null,
          created_at: now,
          updated_at: now,
        };
        await insertOrConflict(
          () => registry.insertOne({ _id: row.id, tenant_id: tenantId }, { session }),
          () => conflict('id', 'device already registered'),
        );
        await table.coll.insertOne({ _id: row.id, ...row }, { session });
        if (BUMPS.devices.create) await bumpPolicy(tenantId, { kind: 'device', id: row.id });
        return row;
      });
    },
    get: (tenantId, id) => table.get(tenantId, id),
    list(tenantId, opts) {
      const filter: Document = { tenant_id: tenantId };
      if (opts?.user_id !== undefined) filter['user_id'] = opts.user_id;
      return table.list(filter, opts);
    },
    async update(tenantId, id, patch) {
      return ctx.write(async ({ session, bumpPolicy }) => {
        const before = await table.get(tenantId, id, session);
        if (!before) return null;
        if (patch.user_id !== undefined && patch.user_id !== null) await refs.requireUser(session, tenantId, patch.user_id);
        const after = await table.update(tenantId, id, patch, session);
        if (deviceUpdateBumps(before, patch)) await bumpPolicy(tenantId, { kind: 'device', id });
        return after;
      });
    },
    async delete(tenantId, id) {
      return ctx.write(async ({ session, bumpPolicy }) => {
        if (!(await table.delete(tenantId, id, session))) return false;
        await registry.deleteOne({ _id: id, tenant_id: tenantId }, { session });
        if (BUMPS.devices.delete) await bumpPolicy(tenantId, { kind: 'device', id });
        return true;
      });
    },
    async tenantOf(deviceId) {
      return (await registry.findOne({ _id: deviceId }))?.tenant_id ?? null;
    },
    async directory() {
      const rows = await registry.find({}, { sort: { _id: 1 } }).toArray();
      return rows.map((r) => ({ device_id: r._id, tenant_id: r.tenant_id }));
    },
  };
}
