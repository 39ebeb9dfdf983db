/**
 * Bulk onboarding on SQLite (port: directory.import): reads the records the rows name, lets
 * rules/onboarding.ts decide, and writes the plan in the same IMMEDIATE transaction, so a
 * concurrent single create cannot slip between the check and the write.
 */
import type { Device, Role, User } from '../../domain.js';
import type { Store } from '../port.js';
import { assignmentKey, directoryLookups, planDirectoryImport } from '../rules/onboarding.js';
import type { PolicyTouch } from '../rules/policy-history.js';
import { emailKey } from '../rules/names.js';
import type { SqliteContext, Stmt } from './context.js';
import { DEVICE_COLUMNS } from './device-repo.js';
import type { TenantRefs } from './refs.js';
import { ROLE_COLUMNS, USER_COLUMNS } from './tenant-repos.js';

export function createDirectoryRepo(ctx: SqliteContext, refs: TenantRefs): Store['directory'] {
  const db = ctx.db;
  const userByEmail: Stmt<[string, string], User> = db.prepare(
    `SELECT ${USER_COLUMNS.join(', ')} FROM users WHERE tenant_id = ? AND email_key = ?`,
  );
  const roleByName: Stmt<[string, string], Role> = db.prepare(
    `SELECT ${ROLE_COLUMNS.join(', ')} FROM roles WHERE tenant_id = ? AND name_key = ?`,
  );
  const deviceById: Stmt<[string], Device> = db.prepare(`SELECT ${DEVICE_COLUMNS.join(', ')} FROM devices WHERE id = ?`);
  const rolesOfUser: Stmt<[string, string], { role_id: string }> = db.prepare(
    'SELECT role_id FROM user_roles WHERE tenant_id = ? AND user_id = ?',
  );
  const deviceCount: Stmt<[string], number> = db.prepare<[string], number>('SELECT count(*) FROM devices WHERE tenant_id = ?').pluck();
  const planOf: Stmt<[string], { id: string; max_devices: number | null }> = db.prepare(
    'SELECT p.id, p.max_devices FROM tenants t JOIN plans p ON p.id = t.plan_id WHERE t.id = ?',
  );
  const insertUser: Stmt<[User & { email_key: string | null }]> = db.prepare(
    `INSERT INTO users (${USER_COLUMNS.join(', ')}, email_key) VALUES (${USER_COLUMNS.map((c) => `@${c}`).join(', ')}, @email_key)`,
  );
  const renameUser: Stmt<[string, number, string, string]> = db.prepare('UPDATE users SET name = ?, updated_at = ? WHERE tenant_id = ? AND id = ?');
  const insertDevice: Stmt<[Device]> = db.prepare(
    `INSERT INTO devices (${DEVICE_COLUMNS.join(', ')}) VALUES (${DEVICE_COLUMNS.map((c) => `@${c}`).join(', ')})`,
  );
  const updateDevice: Stmt<[Device]> = db.prepare(
    'UPDATE devices SET name = @name, os = @os, user_id = @user_id, updated_at = @updated_at WHERE tenant_id = @tenant_id AND id = @id',
  );
  const assign: Stmt<[string, string, string, number]> = db.prepare(
    'INSERT INTO user_roles (tenant_id, user_id, role_id, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
  );

  return {
    async import(tenantId, rows, opts) {
      const dryRun = opts?.dryRun ?? false;
      // A dry run reads in a plain transaction: one snapshot, no write lock.
      const run = <T>(fn: (bump: (touches: PolicyTouch[]) => void) => T): T =>
        dryRun ? ctx.read(() => fn(() => {})) : ctx.write((s) => fn((touches) => s.bumpPolicy(tenantId, touches)));
      return run((bump) => {
        refs.requireTenant(tenantId);
        const lookups = directoryLookups(rows);
        const usersByEmail = new Map<string, User>();
        for (const key of lookups.emailKeys) {
          const u = userByEmail.get(tenantId, key);
          if (u) usersByEmail.set(key, u);
        }
        const rolesByName = new Map<string, Role>();
        for (const key of lookups.roleKeys) {
          const r = roleByName.get(tenantId, key);
          if (r) rolesByName.set(key, r);
        }
        const devices = new Map<string, Device>();
        const foreignDevices = new Set<string>();
        for (const id of lookups.deviceIds) {
          const d = deviceById.get(id);
          if (!d) continue;
          if (d.tenant_id === tenantId) devices.set(id, d);
          else foreignDevices.add(id);
        }
        const assignments = new Set<string>();
        for (const u of usersByEmail.values()) for (const { role_id } of rolesOfUser.all(tenantId, u.id)) assignments.add(assignmentKey(u.id, role_id));
        const plan = planDirectoryImport(
          tenantId,
          rows,
          {
            usersByEmail,
            devices,
            foreignDevices,
            rolesByName,
            assignments,
            deviceCount: deviceCount.get(tenantId) ?? 0,
            plan: planOf.get(tenantId) ?? { id: 'unknown', max_devices: null },
          },
          { now: ctx.now(), newId: ctx.newId, dryRun },
        );
        if (dryRun) return plan.result;
        for (const u of plan.usersToCreate) insertUser.run({ ...u, email_key: emailKey(u.email) });
        for (const u of plan.usersToUpdate) renameUser.run(u.name, u.updated_at, tenantId, u.id);
        for (const d of plan.devicesToCreate) insertDevice.run(d);
        for (const d of plan.devicesToUpdate) updateDevice.run(d);
        for (const a of plan.assignmentsToCreate) assign.run(tenantId, a.user_id, a.role_id, ctx.now());
        if (plan.bumpsPolicy) bump(plan.touches);
        return plan.result;
      });
    },
  };
}
