/**
 * Bulk onboarding (port: directory.import): what an import of directory rows does, decided once
 * for every adapter. A row may name a device user by e-mail (created when new; its name updated
 * when given and different), role names the user must hold (assignments are only ever added),
 * and a device by id (created when new; name, os and owner updated when given and different).
 *
 * All or nothing: every problem of every row is collected first and reported together, so a
 * file is fixed in one round trip; nothing is written unless no row has a problem. Idempotent on
 * the natural keys (e-mail, device id, role name): importing the same file twice changes nothing
 * the second time and answers 'unchanged' for every row.
 */
import type { Device, Plan, Role, User } from '../../domain.js';
import { createError, type FieldIssue } from '../../errors.js';
import type { DirectoryImportResult, DirectoryRow, DirectoryRowResult, ImportOutcome } from '../port.js';
import { emailKey, nameKey } from './names.js';
import { BUMPS } from './policy-version.js';
import type { PolicyTouch } from './policy-history.js';

/** What an adapter reads before planning: only the records the rows name. */
export interface DirectoryLookups {
  /** emailKey()s of the rows' users. */
  emailKeys: string[];
  deviceIds: string[];
  /** nameKey()s of the rows' roles. */
  roleKeys: string[];
}

export interface DirectoryState {
  /** The tenant's users by emailKey. */
  usersByEmail: ReadonlyMap<string, User>;
  /** The tenant's devices by id. */
  devices: ReadonlyMap<string, Device>;
  /** Ids among the rows' devices registered to another tenant. */
  foreignDevices: ReadonlySet<string>;
  /** The tenant's roles by nameKey. */
  rolesByName: ReadonlyMap<string, Role>;
  /** Existing assignments among the rows' users, as assignmentKey(user, role). */
  assignments: ReadonlySet<string>;
  deviceCount: number;
  plan: Pick<Plan, 'id' | 'max_devices'>;
}

export interface DirectoryPlan {
  usersToCreate: User[];
  usersToUpdate: User[];
  devicesToCreate: Device[];
  devicesToUpdate: Device[];
  assignmentsToCreate: Array<{ user_id: string; role_id: string }>;
  /** Whether the writes can change a decision (rules/policy-version.ts). */
  bumpsPolicy: boolean;
  /**
   * What the writes can change in the policy history, so the version re-examines those scopes
   * instead of the whole tenant (a 100,000-device tenant imported 1,000 rows at a time re-read
   * every device and history entry on each call).
   */
  touches: PolicyTouch[];
  result: DirectoryImportResult;
}

export const assignmentKey = (userId: string, roleId: string): string => `${userId}\u0000${roleId}`;

export function directoryLookups(rows: readonly DirectoryRow[]): DirectoryLookups {
  const emails = new Set<string>();
  const devices = new Set<string>();
  const roles = new Set<string>();
  for (const r of rows) {
    const e = emailKey(r.user_email);
    if (e !== null) emails.add(e);
    if (r.device_id !== undefined) devices.add(r.device_id);
    for (const role of r.roles ?? []) roles.add(nameKey(role));
  }
  return { emailKeys: [...emails], deviceIds: [...devices], roleKeys: [...roles] };
}

const counts = (): Record<ImportOutcome, number> => ({ created: 0, updated: 0, unchanged: 0 });

/** Problems a row has on its own or against earlier rows, before any state is read. */
function rowShapeIssues(rows: readonly DirectoryRow[]): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const nameOfEmail = new Map<string, { row: number; name: string | undefined }>();
  const rowOfDevice = new Map<string, number>();
  rows.forEach((r, i) => {
    const at = (field?: string): string => (field === undefined ? `rows.${i}` : `rows.${i}.${field}`);
    const email = emailKey(r.user_email);
    if (email === null && r.device_id === undefined) issues.push({ field: at(), message: 'a row needs user_email or device_id' });
    if (email === null) {
      if (r.user_name !== undefined) issues.push({ field: at('user_name'), message: 'needs user_email (the user’s key)' });
      if ((r.roles ?? []).length > 0) issues.push({ field: at('roles'), message: 'needs user_email (the user holding them)' });
    } else {
      const earlier = nameOfEmail.get(email);
      if (earlier === undefined) nameOfEmail.set(email, { row: i, name: r.user_name });
      else if (r.user_name !== undefined && earlier.name !== undefined && earlier.name !== r.user_name) {
        issues.push({ field: at('user_name'), message: `row ${earlier.row} gives this user the name '${earlier.name}'` });
      } else if (earlier.name === undefined && r.user_name !== undefined) nameOfEmail.set(email, { row: i, name: r.user_name });
    }
    if (r.device_id === undefined) {
      if (r.device_name !== undefined) issues.push({ field: at('device_name'), message: 'needs device_id' });
      if (r.device_os !== undefined) issues.push({ field: at('device_os'), message: 'needs device_id' });
    } else {
      const earlier = rowOfDevice.get(r.device_id);
      if (earlier !== undefined) issues.push({ field: at('device_id'), message: `device already in row ${earlier}` });
      else rowOfDevice.set(r.device_id, i);
    }
  });
  return issues;
}

function fail(unordered: FieldIssue[]): never {
  const rowOf = (i: FieldIssue): number => Number(/^rows\.(\d+)/.exec(i.field)?.[1] ?? 0);
  // In row order (stable: within a row, the order the checks found them).
  const issues = unordered.map((issue, n) => ({ issue, n })).sort((a, b) => rowOf(a.issue) - rowOf(b.issue) || a.n - b.n).map((x) => x.issue);
  const first = issues[0]!;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : '';
  throw createError('VALIDATION_FAILED', `${first.field}: ${first.message}${more}; nothing was imported`, issues);
}

export function planDirectoryImport(
  tenantId: string,
  rows: readonly DirectoryRow[],
  state: DirectoryState,
  opts: { now: number; newId: () => string; dryRun: boolean },
): DirectoryPlan {
  const issues = rowShapeIssues(rows);
  const users = new Map(state.usersByEmail);
  const devices = new Map(state.devices);
  const assignments = new Set(state.assignments);
  const created = { users: new Set<string>(), devices: new Set<string>() };
  const updated = { users: new Map<string, User>(), devices: new Map<string, Device>() };
  const newAssignments: Array<{ user_id: string; role_id: string }> = [];
  const results: DirectoryRowResult[] = [];
  const tally = { users: counts(), devices: counts(), role_assignments: { created: 0, unchanged: 0 } };
  let ownersChanged = false;

  rows.forEach((r, i) => {
    const result: DirectoryRowResult = { row: i, user: null, user_id: null, device: null, device_id: null, roles_added: 0 };
    const email = emailKey(r.user_email);
    let user: User | null = null;
    if (email !== null && r.user_email !== undefined) {
      const existing = users.get(email);
      if (existing === undefined) {
        user = { id: opts.newId(), tenant_id: tenantId, name: r.user_name ?? r.user_email.trim(), email: r.user_email.trim(), created_at: opts.now, updated_at: opts.now };
        users.set(email, user);
        created.users.add(user.id);
        result.user = 'created';
      } else if (r.user_name !== undefined && r.user_name !== existing.name) {
        user = { ...existing, name: r.user_name, updated_at: opts.now };
        users.set(email, user);
        if (!created.users.has(user.id)) updated.users.set(user.id, user);
        result.user = created.users.has(user.id) ? 'created' : 'updated';
      } else {
        user = existing;
        result.user = 'unchanged';
      }
      result.user_id = user.id;
      for (const roleName of r.roles ?? []) {
        const role = state.rolesByName.get(nameKey(roleName));
        if (role === undefined) {
          issues.push({ field: `rows.${i}.roles`, message: `no role named '${roleName}'` });
          continue;
        }
        const key = assignmentKey(user.id, role.id);
        if (assignments.has(key)) {
          tally.role_assignments.unchanged++;
          continue;
        }
        assignments.add(key);
        newAssignments.push({ user_id: user.id, role_id: role.id });
        tally.role_assignments.created++;
        result.roles_added++;
      }
    }
    if (r.device_id !== undefined) {
      result.device_id = r.device_id;
      if (state.foreignDevices.has(r.device_id)) {
        issues.push({ field: `rows.${i}.device_id`, message: 'device already registered' });
      } else {
        const existing = devices.get(r.device_id);
        const owner = user?.id;
        if (existing === undefined) {
          const device: Device = {
            id: r.device_id,
            tenant_id: tenantId,
            user_id: owner ?? null,
            name: r.device_name ?? r.device_id,
            os: r.device_os ?? null,
            created_at: opts.now,
            updated_at: opts.now,
          };
          devices.set(device.id, device);
          created.devices.add(device.id);
          result.device = 'created';
        } else {
          const patch: Partial<Device> = {};
          if (r.device_name !== undefined && r.device_name !== existing.name) patch.name = r.device_name;
          if (r.device_os !== undefined && r.device_os !== existing.os) patch.os = r.device_os;
          if (owner !== undefined && owner !== existing.user_id) patch.user_id = owner;
          if (Object.keys(patch).length === 0) result.device = 'unchanged';
          else {
            if (patch.user_id !== undefined) ownersChanged = true;
            devices.set(existing.id, { ...existing, ...patch, updated_at: opts.now });
            updated.devices.set(existing.id, { ...existing, ...patch, updated_at: opts.now });
            result.device = 'updated';
          }
        }
      }
    }
    if (result.user !== null) tally.users[result.user]++;
    if (result.device !== null) tally.devices[result.device]++;
    results.push(result);
  });
  if (issues.length > 0) fail(issues);

  const devicesToCreate = [...created.devices].map((id) => devices.get(id)!);
  const max = state.plan.max_devices;
  if (max !== null && devicesToCreate.length > 0 && state.deviceCount + devicesToCreate.length > max) {
    throw createError(
      'PLAN_LIMIT_EXCEEDED',
      `plan ${state.plan.id} allows ${max} devices; the tenant has ${state.deviceCount} and the import adds ${devicesToCreate.length}; nothing was imported`,
    );
  }
  const usersToCreate = [...users.values()].filter((u) => created.users.has(u.id));
  const devicesToUpdate = [...updated.devices.values()];
  const touches: PolicyTouch[] = [
    ...usersToCreate.map((u): PolicyTouch => ({ kind: 'user', id: u.id })),
    ...[...devicesToCreate, ...devicesToUpdate].map((d): PolicyTouch => ({ kind: 'device', id: d.id })),
    ...newAssignments.map((a): PolicyTouch => ({ kind: 'user_role', user_id: a.user_id, role_id: a.role_id })),
  ];
  return {
    usersToCreate,
    usersToUpdate: [...updated.users.values()],
    devicesToCreate,
    devicesToUpdate,
    assignmentsToCreate: newAssignments,
    touches,
    bumpsPolicy:
      (devicesToCreate.length > 0 && BUMPS.devices.create) ||
      ownersChanged ||
      newAssignments.length > 0 ||
      (usersToCreate.length > 0 && BUMPS.users.create),
    result: { dry_run: opts.dryRun, rows: results, users: tally.users, devices: tally.devices, role_assignments: tally.role_assignments },
  };
}
