/**
 * Registered devices. A device id is what towers report, so it is unique across the platform,
 * and the device → user link is the first hop of every decision (DESIGN §4).
 */
import type { Device } from '../../domain.js';
import type { Store } from '../port.js';
import { BUMPS, deviceUpdateBumps } from '../rules/policy-version.js';
import { requireRoomForDevice } from '../rules/platform.js';
import type { SqliteContext, Stmt } from './context.js';
import { insertOrConflict } from './context.js';
import { EntityTable } from './entity-table.js';
import type { TenantRefs } from './refs.js';

export const DEVICE_COLUMNS = ['id', 'tenant_id', 'user_id', 'name', 'os', 'created_at', 'updated_at'] as const;

export function createDeviceRepo(ctx: SqliteContext, refs: TenantRefs): Store['devices'] {
  const table = new EntityTable<Device>(ctx, 'devices', DEVICE_COLUMNS, 'tenant', ['user_id', 'name', 'os']);
  const tenantOf: Stmt<[string], { tenant_id: string }> = ctx.db.prepare('SELECT tenant_id FROM devices WHERE id = ?');
  const directory: Stmt<[], { device_id: string; tenant_id: string }> = ctx.db.prepare(
    'SELECT id AS device_id, tenant_id FROM devices ORDER BY id',
  );
  const planLimit: Stmt<[string], { plan_id: string; max_devices: number | null }> = ctx.db.prepare(
    'SELECT p.id AS plan_id, p.max_devices FROM tenants t JOIN plans p ON p.id = t.plan_id WHERE t.id = ?',
  );
  const countDevices: Stmt<[string], number> = ctx.db
    .prepare<[string], number>('SELECT count(*) FROM devices WHERE tenant_id = ?')
    .pluck();

  const requireRoom = (tenantId: string): void => {
    const limit = planLimit.get(tenantId);
    if (limit) requireRoomForDevice({ id: limit.plan_id, max_devices: limit.max_devices }, countDevices.get(tenantId) ?? 0);
  };

  return {
    async create(tenantId, input) {
      return ctx.write((scope) => {
        refs.requireTenant(tenantId);
        const userId = input.user_id ?? null;
        if (userId !== null) refs.requireUser(tenantId, userId);
        requireRoom(tenantId);
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
        insertOrConflict(() => table.insert(row), 'id', 'device already registered');
        if (BUMPS.devices.create) scope.bumpPolicy(tenantId, { kind: 'device', id: row.id });
        return row;
      });
    },
    async get(tenantId, id) {
      return table.get(tenantId, id);
    },
    async list(tenantId, opts) {
      return table.list({ tenant_id: tenantId, user_id: opts?.user_id }, opts);
    },
    async update(tenantId, id, patch) {
      return ctx.write((scope) => {
        const before = table.get(tenantId, id);
        if (!before) return null;
        if (patch.user_id !== undefined && patch.user_id !== null) refs.requireUser(tenantId, patch.user_id);
        const after = table.update(tenantId, id, patch);
        if (deviceUpdateBumps(before, patch)) scope.bumpPolicy(tenantId, { kind: 'device', id });
        return after;
      });
    },
    async delete(tenantId, id) {
      return ctx.write((scope) => {
        if (!table.delete(tenantId, id)) return false;
        if (BUMPS.devices.delete) scope.bumpPolicy(tenantId, { kind: 'device', id });
        return true;
      });
    },
    async tenantOf(deviceId) {
      return tenantOf.get(deviceId)?.tenant_id ?? null;
    },
    async directory() {
      return directory.all();
    },
  };
}
