/**
 * Console sign-in: console users (people, not device users) and rotating refresh tokens.
 */
import type { ConsoleUser } from '../../domain.js';
import type { RefreshTokenRecord, Store } from '../port.js';
import { normaliseEmail } from '../rules/platform.js';
import type { SqliteContext, Stmt } from './context.js';
import { insertOrConflict, notFound, sqliteErrorCode } from './context.js';
import { EntityTable } from './entity-table.js';

const CONSOLE_USER_COLUMNS = ['id', 'tenant_id', 'email', 'console_role', 'created_at', 'updated_at'] as const;

type ConsoleUserRow = ConsoleUser & { password_hash: string };

export function createConsoleUserRepo(ctx: SqliteContext): Store['consoleUsers'] {
  const table = new EntityTable<ConsoleUser>(ctx, 'console_users', CONSOLE_USER_COLUMNS, 'platform', []);
  const tenantExists: Stmt<[string], { id: string }> = ctx.db.prepare('SELECT id FROM tenants WHERE id = ?');
  const insert: Stmt<[ConsoleUserRow]> = ctx.db.prepare(
    `INSERT INTO console_users (id, tenant_id, email, console_role, password_hash, created_at, updated_at)
     VALUES (@id, @tenant_id, @email, @console_role, @password_hash, @created_at, @updated_at)`,
  );
  const byEmail: Stmt<[string], ConsoleUserRow> = ctx.db.prepare(
    `SELECT ${table.columnList}, password_hash FROM console_users WHERE email = ?`,
  );

  return {
    async create(input) {
      return ctx.write(() => {
        if (input.tenant_id !== null && !tenantExists.get(input.tenant_id)) {
          throw notFound('tenant_id', 'no such tenant');
        }
        const now = ctx.now();
        const row: ConsoleUserRow = {
          id: ctx.newId(),
          tenant_id: input.tenant_id,
          // Stored lowercased so the UNIQUE constraint is case-insensitive and lookups hit the index.
          email: normaliseEmail(input.email),
          console_role: input.console_role,
          password_hash: input.password_hash,
          created_at: now,
          updated_at: now,
        };
        insertOrConflict(() => insert.run(row), 'email', 'already taken');
        const { password_hash: _omitted, ...user } = row;
        return user;
      });
    },
    async get(id) {
      return table.get(null, id);
    },
    async findByEmail(email) {
      return byEmail.get(normaliseEmail(email)) ?? null;
    },
    async list(tenantId, opts) {
      return table.list({ tenant_id: tenantId }, opts);
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
  };
}
