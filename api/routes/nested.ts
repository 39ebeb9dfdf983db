/**
 * Nested reads from the architecture seed: an enterprise (tenant) and its devices, policies and
 * users; a device's policies, usage and live status. Towers and carriers are in nested-infra.ts.
 *
 * Every id is resolved in the caller's tenant first, so another tenant's id answers 404 exactly
 * like an unknown one. Operators read `/enterprises/{id}` itself (they run tenants) but, as
 * everywhere, none of a tenant's data below it.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { CommandRecord, Device } from '../../shared/domain.js';
import { createError } from '../../shared/errors.js';
import { EffectSchema } from '../../shared/mqtt/payloads.js';
import type { Store } from '../../shared/store/port.js';
import { principalOf, tenantIdOf } from '../auth/guard.js';
import { holds } from '../auth/permissions.js';
import { EpochMsSchema, IdParams, IdSchema, NextCursor, errorResponses, found, listQuery, paginate, sortQuery } from '../schemas/common.js';
import {
  CommandRecordSchema,
  DeviceSchema,
  PolicySchema,
  TenantSchema,
  UsageRecordSchema,
  UserSchema,
} from '../../shared/schemas/records.js';
import { nestedInfraRoutes } from './nested-infra.js';
import { idOrSelf, refField } from './natural-keys.js';
import { policiesOfUser } from './policies.js';

const DevicesQuery = listQuery({ user_id: refField('user').optional() });
const DeviceUsageQuery = listQuery({ effect: EffectSchema.optional(), tower_id: IdSchema.optional() });

const DeviceStatusSchema = z.object({
  device_id: z.string(),
  last_seen: EpochMsSchema.nullable().describe('time of the newest decided event of the device'),
  last_tower_id: z.string().nullable().describe('tower of that event'),
  open_alerts: z.number().int(),
  active_remediations: z
    .array(CommandRecordSchema)
    .describe('holds applied at a tower and not yet over (block_device, block_app, quarantine, throttle), not lifted by a later unblock'),
});

/** A tenant-scoped id in the path must be the caller's own tenant; anything else does not exist. */
function ownTenant(tenantId: string, id: string): void {
  if (id !== tenantId) throw createError('NOT_FOUND', 'enterprise not found');
}

async function deviceOf(store: Store, tenantId: string, id: string): Promise<Device> {
  return found(await store.devices.get(tenantId, id), 'device');
}

/** Walks every page of a keyset list (bounded: these lists are per device). */
async function countAll(fetch: (cursor: string | null) => Promise<{ items: unknown[]; next_cursor: string | null }>): Promise<number> {
  let count = 0;
  let cursor: string | null = null;
  do {
    const page = await fetch(cursor);
    count += page.items.length;
    cursor = page.next_cursor;
  } while (cursor !== null);
  return count;
}

const HOLD_TYPES: ReadonlySet<string> = new Set(['block_device', 'block_app', 'quarantine', 'throttle']);
/** What an unblock lifts at the tower (edge-agent/block-table.ts): device-level holds, or one app block. */
const DEVICE_HOLDS: ReadonlySet<string> = new Set(['block_device', 'quarantine']);

/**
 * Holds in force, replayed the way the tower's enforcer keeps them: per tower, a hold occupies a
 * slot (type, and app for block_app/throttle) from its ack for `duration_s`; a newer hold replaces
 * the slot; unblock_device lifts the device-level holds, unblock_app the app's block.
 */
export function activeRemediations(applied: readonly CommandRecord[], now: number): CommandRecord[] {
  const slots = new Map<string, CommandRecord>();
  const inOrder = [...applied].sort((a, b) => (a.acked_at ?? a.updated_at) - (b.acked_at ?? b.updated_at));
  for (const c of inOrder) {
    if (HOLD_TYPES.has(c.type)) {
      const app = c.type === 'block_app' || c.type === 'throttle' ? (c.app ?? '') : '';
      slots.set(`${c.tower_id}\u0000${c.type}\u0000${app}`, c);
    } else if (c.type === 'unblock_device' || c.type === 'unblock_app') {
      for (const [key, held] of slots) {
        if (held.tower_id !== c.tower_id) continue;
        const lifts = c.type === 'unblock_device' ? DEVICE_HOLDS.has(held.type) : held.type === 'block_app' && held.app === c.app;
        if (lifts) slots.delete(key);
      }
    }
  }
  return [...slots.values()]
    .filter((c) => c.duration_s !== null && (c.acked_at ?? c.updated_at) + c.duration_s * 1000 > now)
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

async function appliedCommands(store: Store, tenantId: string, deviceId: string): Promise<CommandRecord[]> {
  const all: CommandRecord[] = [];
  let cursor: string | null = null;
  do {
    const page = await store.commands.list(tenantId, { device_id: deviceId, status: 'applied', limit: 1000, cursor });
    all.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor !== null);
  return all;
}

export const nestedRoutes: FastifyPluginAsyncZod = async (app) => {
  // --- enterprises ---------------------------------------------------------------------------

  app.get(
    '/enterprises',
    {
      // Operators and tenant users alike; the handler narrows to tenants:read / tenant:read.
      config: { permission: 'session:read' },
      schema: {
        summary: 'List enterprises (operators: every tenant; tenant users: their own)',
        querystring: listQuery(sortQuery(['name', 'created_at'])),
        response: { 200: z.object({ enterprises: z.array(TenantSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      if (principal.tenantId === null) {
        if (!holds(principal, 'tenants:read')) throw createError('FORBIDDEN', "lacks permission 'tenants:read'");
        const page = await paginate(request.query, (o) => app.store.tenants.list(o));
        return { enterprises: page.items, next_cursor: page.next_cursor };
      }
      if (!holds(principal, 'tenant:read')) throw createError('FORBIDDEN', "lacks permission 'tenant:read'");
      // One row at most: the first page holds it, later pages (a cursor, page > 1) are empty.
      const own = request.query.cursor === undefined && (request.query.page ?? 1) === 1 ? await app.store.tenants.get(principal.tenantId) : null;
      return { enterprises: own ? [own] : [], next_cursor: null };
    },
  );

  app.get(
    '/enterprises/:id',
    {
      // Operators and tenant users alike; the handler narrows to tenants:read / tenant:read.
      config: { permission: 'session:read' },
      schema: {
        summary: 'Get an enterprise (operators: any tenant; tenant users: their own)',
        params: IdParams,
        response: { 200: z.object({ enterprise: TenantSchema }), ...errorResponses },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { id } = request.params;
      if (principal.tenantId === null) {
        if (!holds(principal, 'tenants:read')) throw createError('FORBIDDEN', "lacks permission 'tenants:read'");
      } else {
        if (!holds(principal, 'tenant:read')) throw createError('FORBIDDEN', "lacks permission 'tenant:read'");
        ownTenant(principal.tenantId, id);
      }
      return { enterprise: found(await app.store.tenants.get(id), 'enterprise') };
    },
  );

  app.get(
    '/enterprises/:id/devices',
    {
      config: { permission: 'devices:read' },
      schema: {
        summary: "The enterprise's registered devices (filter by user_id)",
        params: IdParams,
        querystring: DevicesQuery,
        response: { 200: z.object({ devices: z.array(DeviceSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      ownTenant(tenantId, request.params.id);
      const user_id = request.query.user_id === undefined ? undefined : await idOrSelf(app.store, tenantId, 'user', request.query.user_id);
      const page = await paginate(request.query, (o) =>
        app.store.devices.list(tenantId, { ...o, ...(user_id !== undefined && { user_id }) }),
      );
      return { devices: page.items, next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/enterprises/:id/policies',
    {
      config: { permission: 'policies:read' },
      schema: {
        summary: "The enterprise's policies",
        params: IdParams,
        querystring: listQuery({}),
        response: { 200: z.object({ policies: z.array(PolicySchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      ownTenant(tenantId, request.params.id);
      const page = await paginate(request.query, (o) => app.store.policies.list(tenantId, o));
      return { policies: page.items, next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/enterprises/:id/users',
    {
      config: { permission: 'users:read' },
      schema: {
        summary: "The enterprise's device users",
        params: IdParams,
        querystring: listQuery({}),
        response: { 200: z.object({ users: z.array(UserSchema), next_cursor: NextCursor }), ...errorResponses },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      ownTenant(tenantId, request.params.id);
      const page = await paginate(request.query, (o) => app.store.users.list(tenantId, o));
      return { users: page.items, next_cursor: page.next_cursor };
    },
  );

  // --- devices -------------------------------------------------------------------------------

  app.get(
    '/devices/:id/policies',
    {
      config: { permission: 'policies:read' },
      schema: {
        summary: "Policies reaching a device through its owner's roles",
        description: "Also needs 'devices:read' (it names the device's owner; API keys must hold that scope too).",
        params: IdParams,
        response: {
          200: z.object({ device_id: z.string(), user_id: z.string().nullable(), policies: z.array(PolicySchema) }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      if (!holds(principalOf(request), 'devices:read')) throw createError('FORBIDDEN', "lacks permission 'devices:read'");
      const tenantId = tenantIdOf(request);
      const device = await deviceOf(app.store, tenantId, request.params.id);
      // A device without owner is decided by the tenant default alone: no policy reaches it.
      const policies = device.user_id === null ? [] : await policiesOfUser(app.store, tenantId, device.user_id);
      return { device_id: device.id, user_id: device.user_id, policies };
    },
  );

  app.get(
    '/devices/:id/usage',
    {
      config: { permission: 'usage:read' },
      schema: {
        summary: 'Decided usage of a device, newest first',
        params: IdParams,
        querystring: DeviceUsageQuery,
        response: {
          200: z.object({ device_id: z.string(), usage: z.array(UsageRecordSchema), next_cursor: NextCursor }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const device = await deviceOf(app.store, tenantId, request.params.id);
      const { effect, tower_id } = request.query;
      const filters = { device_id: device.id, ...(effect !== undefined && { effect }), ...(tower_id !== undefined && { tower_id }) };
      const page = await paginate(request.query, (o) => app.store.usage.list(tenantId, { ...o, ...filters }));
      return { device_id: device.id, usage: page.items, next_cursor: page.next_cursor };
    },
  );

  app.get(
    '/devices/:id/status',
    {
      config: { permission: 'devices:read' },
      schema: {
        summary: 'Where a device was last seen, its open alerts and the remediations in force',
        description: "Also needs 'alerts:read' and 'remediation:read' (API keys must hold those scopes too).",
        params: IdParams,
        response: { 200: DeviceStatusSchema, ...errorResponses },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      for (const needed of ['alerts:read', 'remediation:read'] as const) {
        if (!holds(principal, needed)) throw createError('FORBIDDEN', `lacks permission '${needed}'`);
      }
      const tenantId = tenantIdOf(request);
      const device = await deviceOf(app.store, tenantId, request.params.id);
      const [last, openAlerts, applied] = await Promise.all([
        // Where and when the cloud last received the device's usage (not the tower's own stamps).
        app.store.usage.lastSeen(tenantId, device.id),
        countAll((cursor) => app.store.alerts.list(tenantId, { device_id: device.id, status: 'open', limit: 1000, cursor })),
        appliedCommands(app.store, tenantId, device.id),
      ]);
      return {
        device_id: device.id,
        last_seen: last?.at ?? null,
        last_tower_id: last?.tower_id ?? null,
        open_alerts: openAlerts,
        active_remediations: activeRemediations(applied, app.clock()),
      };
    },
  );

  await app.register(nestedInfraRoutes);
};
