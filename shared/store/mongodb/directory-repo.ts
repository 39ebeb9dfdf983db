/**
 * Bulk onboarding on MongoDB (port: directory.import): reads the documents the rows name with a
 * handful of $in queries, lets rules/onboarding.ts decide, and writes the plan with bulk inserts
 * in one transaction. A concurrent single create of the same e-mail or device id makes an
 * insert hit a unique index: the transaction is then run again (ConcurrentInsert) and the
 * second run sees that record as existing.
 */
import type { Device, Role, User } from '../../domain.js';
import type { Store } from '../port.js';
import { notFound } from '../rules/errors.js';
import { emailKey } from '../rules/names.js';
import { assignmentKey, directoryLookups, planDirectoryImport } from '../rules/onboarding.js';
import type { PolicyTouch } from '../rules/policy-history.js';
import { C, type DeviceDoc, type DeviceRegistryDoc, type PlanDoc, type RoleDoc, type TenantDoc, type UserDoc, type UserRoleDoc } from './collections.js';
import { insertChecked, strip, type MongoContext } from './context.js';
import type { SessionLike } from './db-like.js';
import type { TenantRefs } from './entity.js';
import { compositeKey } from './keys.js';
import { toRole, toUser } from './tenant-repos.js';

export function createDirectoryRepo(ctx: MongoContext, refs: TenantRefs): Store['directory'] {
  const users = ctx.coll<UserDoc>(C.users);
  const roles = ctx.coll<RoleDoc>(C.roles);
  const devices = ctx.coll<DeviceDoc>(C.devices);
  const registry = ctx.coll<DeviceRegistryDoc>(C.deviceRegistry);
  const userRoles = ctx.coll<UserRoleDoc>(C.userRoles);

  const plan = async (session: SessionLike, tenantId: string) => {
    const tenant = await ctx.coll<TenantDoc>(C.tenants).findOne({ _id: tenantId }, { session });
    const p = tenant ? await ctx.coll<PlanDoc>(C.plans).findOne({ _id: tenant.plan_id }, { session }) : null;
    return p ? { id: p.id, max_devices: p.max_devices } : { id: 'unknown', max_devices: null };
  };

  const importIn = async (session: SessionLike, tenantId: string, rows: Parameters<Store['directory']['import']>[1], dryRun: boolean, bump: (touches: PolicyTouch[]) => Promise<void>) => {
    const lookups = directoryLookups(rows);
    const usersByEmail = new Map<string, User>();
    for (const doc of await users.find({ tenant_id: tenantId, email_key: { $in: lookups.emailKeys } }, { session }).toArray()) {
      usersByEmail.set(doc.email_key ?? '', toUser(doc));
    }
    const rolesByName = new Map<string, Role>();
    for (const doc of await roles.find({ tenant_id: tenantId, name_key: { $in: lookups.roleKeys } }, { session }).toArray()) {
      rolesByName.set(doc.name_key ?? '', toRole(doc));
    }
    const own = new Map<string, Device>();
    const foreign = new Set<string>();
    for (const entry of await registry.find({ _id: { $in: lookups.deviceIds } }, { session }).toArray()) {
      if (entry.tenant_id !== tenantId) foreign.add(entry._id);
    }
    for (const doc of await devices.find({ tenant_id: tenantId, _id: { $in: lookups.deviceIds } }, { session }).toArray()) own.set(doc._id, strip(doc));
    const assignments = new Set<string>();
    const userIds = [...usersByEmail.values()].map((u) => u.id);
    for (const link of await userRoles.find({ tenant_id: tenantId, user_id: { $in: userIds } }, { session }).toArray()) {
      assignments.add(assignmentKey(link.user_id, link.role_id));
    }
    const planned = planDirectoryImport(
      tenantId,
      rows,
      {
        usersByEmail,
        devices: own,
        foreignDevices: foreign,
        rolesByName,
        assignments,
        deviceCount: await devices.countDocuments({ tenant_id: tenantId }, { session }),
        plan: await plan(session, tenantId),
      },
      { now: ctx.now(), newId: ctx.newId, dryRun },
    );
    if (dryRun) return planned.result;
    if (planned.usersToCreate.length > 0) {
      await insertChecked(() => users.insertMany(planned.usersToCreate.map((u) => ({ _id: u.id, ...u, email_key: emailKey(u.email) })), { session }));
    }
    for (const u of planned.usersToUpdate) {
      await users.updateOne({ _id: u.id, tenant_id: tenantId }, { $set: { name: u.name, updated_at: u.updated_at } }, { session });
    }
    if (planned.devicesToCreate.length > 0) {
      await insertChecked(() => registry.insertMany(planned.devicesToCreate.map((d) => ({ _id: d.id, tenant_id: tenantId })), { session }));
      await devices.insertMany(planned.devicesToCreate.map((d) => ({ _id: d.id, ...d })), { session });
    }
    for (const d of planned.devicesToUpdate) {
      await devices.updateOne(
        { _id: d.id, tenant_id: tenantId },
        { $set: { name: d.name, os: d.os, user_id: d.user_id, updated_at: d.updated_at } },
        { session },
      );
    }
    if (planned.assignmentsToCreate.length > 0) {
      const at = ctx.now();
      await insertChecked(() =>
        userRoles.insertMany(
          planned.assignmentsToCreate.map((a) => ({ _id: compositeKey(tenantId, a.user_id, a.role_id), tenant_id: tenantId, ...a, created_at: at })),
          { session },
        ),
      );
    }
    if (planned.bumpsPolicy) await bump(planned.touches);
    return planned.result;
  };

  return {
    async import(tenantId, rows, opts) {
      const dryRun = opts?.dryRun ?? false;
      if (dryRun) {
        return ctx.read(async (session) => {
          if (!(await ctx.coll<TenantDoc>(C.tenants).findOne({ _id: tenantId }, { session }))) throw notFound('tenant_id', 'no such tenant');
          return importIn(session, tenantId, rows, true, async () => {});
        });
      }
      return ctx.write(async ({ session, bumpPolicy }) => {
        await refs.requireTenant(session, tenantId);
        return importIn(session, tenantId, rows, false, (touches) => bumpPolicy(tenantId, touches));
      });
    },
  };
}
