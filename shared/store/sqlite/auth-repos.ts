/**
 * Console sign-in: console users (people, not device users) and rotating refresh tokens.
 */
import { ALERT_STEP_EVENTS } from '../../bus-events.js';
import type { Alert, AlertEvent, ConsoleUser } from '../../domain.js';
import type { ConsoleUserInput, ConsoleUserWithPassword, RefreshTokenRecord, Store } from '../port.js';
import { ALERT_WORKFLOW_FIELDS, unassignDeletedAssignee } from '../rules/alerts.js';
import { MAX_ACCOUNTS_PER_EMAIL_LOOKUP, newConsoleUser, patchedConsoleUser, requireOwnerRemains } from '../rules/console-users.js';
import { normaliseEmail } from '../rules/platform.js';
import type { SqliteContext, Stmt } from './context.js';
import { insertOrConflict, limitClause, notFound, sqliteErrorCode } from './context.js';
import { EntityTable } from './entity-table.js';
import { ALERT_COLUMNS, ALERT_EVENT_COLUMNS } from './usage-repo.js';
import type { SqliteOutbox } from './webhook-repos.js';

const CONSOLE_USER_COLUMNS = [
  'id',
  'tenant_id',
  'email',
  'console_role',
  'disabled_at',
  'session_version',
  'created_at',
  'updated_at',
] as const;

type ConsoleUserRow = ConsoleUserWithPassword;

/**
 * Inserts one console account inside the caller's write transaction (consoleUsers.create, and
 * tenants.createWithOwner with its tenant); CONFLICT (email) within its scope.
 */
export function consoleUserInserter(ctx: SqliteContext): (input: ConsoleUserInput) => ConsoleUser {
  const insert: Stmt<[ConsoleUserRow]> = ctx.db.prepare(
    `INSERT INTO console_users (${CONSOLE_USER_COLUMNS.join(', ')}, password_hash)
     VALUES (${CONSOLE_USER_COLUMNS.map((c) => `@${c}`).join(', ')}, @password_hash)`,
  );
  return (input) => {
    const user = newConsoleUser(input, ctx.newId(), ctx.now());
    insertOrConflict(() => insert.run({ ...user, password_hash: input.password_hash }), 'email', 'already taken');
    return user;
  };
}

export function createConsoleUserRepo(ctx: SqliteContext, outbox: SqliteOutbox): Store['consoleUsers'] {
  const table = new EntityTable<ConsoleUser>(ctx, 'console_users', CONSOLE_USER_COLUMNS, 'platform', []);
  const db = ctx.db;
  const tenantExists: Stmt<[string], { id: string }> = db.prepare('SELECT id FROM tenants WHERE id = ?');
  const insertUser = consoleUserInserter(ctx);
  const withPassword: Stmt<[string], ConsoleUserRow> = db.prepare(
    `SELECT ${table.columnList}, password_hash FROM console_users WHERE id = ?`,
  );
  // Sign-in order (rules/console-users.ts compareSignInOrder): operators first, then the oldest.
  const allByEmail: Stmt<[string], ConsoleUserRow> = db.prepare(
    `SELECT ${table.columnList}, password_hash FROM console_users WHERE email = ?
     ORDER BY tenant_id IS NOT NULL, created_at, id ${limitClause(MAX_ACCOUNTS_PER_EMAIL_LOOKUP)}`,
  );
  const inScope: Stmt<[string, string | null], ConsoleUser> = db.prepare(
    `SELECT ${table.columnList} FROM console_users WHERE id = ? AND tenant_id IS ?`,
  );
  const activeOwners: Stmt<[string], number> = db
    .prepare<[string], number>(
      "SELECT count(*) FROM console_users WHERE tenant_id = ? AND console_role = 'owner' AND disabled_at IS NULL",
    )
    .pluck();
  const writeUser: Stmt<[{ id: string; console_role: string; disabled_at: number | null; session_version: number; updated_at: number; password_hash: string | null }]> =
    db.prepare(
      `UPDATE console_users SET console_role = @console_role, disabled_at = @disabled_at,
         session_version = @session_version, updated_at = @updated_at,
         password_hash = coalesce(@password_hash, password_hash)
       WHERE id = @id`,
    );
  const deleteUser: Stmt<[string]> = db.prepare('DELETE FROM console_users WHERE id = ?');
  // An alert's assignee has no foreign key (alerts are history, migration 5): the delete
  // unassigns them itself.
  const activeAssigned: Stmt<[string, string], Alert> = db.prepare(
    `SELECT ${ALERT_COLUMNS.join(', ')} FROM alerts WHERE tenant_id = ? AND assigned_to = ? AND status IN ('open', 'acknowledged') ORDER BY id`,
  );
  const saveWorkflow: Stmt<[Alert]> = db.prepare(
    `UPDATE alerts SET ${ALERT_WORKFLOW_FIELDS.map((c) => `${c} = @${c}`).join(', ')} WHERE tenant_id = @tenant_id AND id = @id`,
  );
  const insertAlertEvent: Stmt<[AlertEvent]> = db.prepare(
    `INSERT INTO alert_events (${ALERT_EVENT_COLUMNS.join(', ')}) VALUES (${ALERT_EVENT_COLUMNS.map((c) => `@${c}`).join(', ')})`,
  );
  const revokeTokens: Stmt<[number, string]> = db.prepare(
    'UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL',
  );

  const ownersOf = (user: ConsoleUser): number => (user.tenant_id === null ? 0 : (activeOwners.get(user.tenant_id) ?? 0));

  return {
    async create(input) {
      return ctx.write(() => {
        if (input.tenant_id !== null && !tenantExists.get(input.tenant_id)) {
          throw notFound('tenant_id', 'no such tenant');
        }
        return insertUser(input);
      });
    },
    async get(id) {
      return table.get(null, id);
    },
    async getWithPassword(id) {
      return withPassword.get(id) ?? null;
    },
    async findByEmail(email) {
      return allByEmail.get(normaliseEmail(email)) ?? null;
    },
    async findAllByEmail(email) {
      return allByEmail.all(normaliseEmail(email));
    },
    async list(tenantId, opts) {
      return table.list({ tenant_id: tenantId, console_role: opts?.console_role }, opts);
    },
    async update(scope, id, patch, check) {
      return ctx.write(() => {
        const before = inScope.get(id, scope);
        if (!before) return null;
        check?.(before);
        const now = ctx.now();
        const after = patchedConsoleUser(before, patch, now);
        requireOwnerRemains(before, after, ownersOf(before));
        writeUser.run({ ...after, password_hash: patch.password_hash ?? null });
        if (after.session_version !== before.session_version) revokeTokens.run(now, id);
        return after;
      });
    },
    async delete(scope, id, check, actor) {
      return ctx.write(() => {
        const before = inScope.get(id, scope);
        if (!before) return null;
        check?.(before);
        requireOwnerRemains(before, null, ownersOf(before));
        // Operators are nobody's assignee; a tenant's account only its own tenant's.
        const assigned = before.tenant_id === null ? [] : activeAssigned.all(before.tenant_id, id);
        const unassigned = unassignDeletedAssignee(assigned, actor ?? { by: null, at: ctx.now() }, ctx.newId);
        for (const { alert, step } of unassigned) {
          saveWorkflow.run(alert);
          insertAlertEvent.run(step);
        }
        // Their webhook deliveries (alert.assigned, assigned_to null) commit with the steps.
        if (before.tenant_id !== null) outbox(before.tenant_id, ALERT_STEP_EVENTS.unassigned, unassigned.map((u) => u.alert));
        // refresh_tokens go with the account (ON DELETE CASCADE).
        if (deleteUser.run(id).changes === 0) return null;
        return { unassigned };
      });
    },
  };
}

export function createRefreshTokenRepo(ctx: SqliteContext): Store['refreshTokens'] {
  const db = ctx.db;
  const insert: Stmt<[Omit<RefreshTokenRecord, 'used_at' | 'revoked_at'>]> = db.prepare(
    `INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)
     VALUES (@id, @user_id, @family_id, @token_hash, @expires_at)`,
  );
  const byHash: Stmt<[string], RefreshTokenRecord> = db.prepare(
    `SELECT id, user_id, family_id, token_hash, expires_at, used_at, revoked_at
     FROM refresh_tokens WHERE token_hash = ?`,
  );
  // The WHERE clause is the atomicity: of two concurrent refreshes with one token, one wins.
  const consume: Stmt<[number, string]> = db.prepare(
    'UPDATE refresh_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL',
  );
  const revokeFamily: Stmt<[number, string]> = db.prepare(
    'UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL',
  );

  // One seek of refresh_tokens_family_revoked (migration-15.ts), however many refreshes the family
  // holds. Any revoked token of the family, not only the newest: a refresh racing the sign-out may
  // add one after revokeFamily ran.
  const familyRevoked: Stmt<[string], { one: number }> = db.prepare(
    'SELECT 1 AS one FROM refresh_tokens WHERE family_id = ? AND revoked_at IS NOT NULL LIMIT 1',
  );

  return {
    async create(rec) {
      const row = {
        id: rec.id,
        user_id: rec.user_id,
        family_id: rec.family_id,
        token_hash: rec.token_hash,
        expires_at: rec.expires_at,
      };
      try {
        insertOrConflict(() => insert.run(row), 'id', 'refresh token already exists');
      } catch (err) {
        if (sqliteErrorCode(err) === 'SQLITE_CONSTRAINT_FOREIGNKEY') throw notFound('user_id', 'no such console user');
        throw err;
      }
    },
    async findByHash(tokenHash) {
      return byHash.get(tokenHash) ?? null;
    },
    async consume(id, now) {
      return consume.run(now, id).changes > 0;
    },
    async revokeFamily(familyId, now) {
      revokeFamily.run(now, familyId);
    },
    async familyRevoked(familyId) {
      return familyRevoked.get(familyId) !== undefined;
    },
  };
}
