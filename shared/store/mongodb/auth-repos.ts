/**
 * Console sign-in: console users (people, not device users) and rotating refresh tokens.
 */
import type { ConsoleUser } from '../../domain.js';
import type { RefreshTokenRecord, Store } from '../port.js';
import { conflict, notFound } from '../rules/errors.js';
import { normaliseEmail } from '../rules/platform.js';
import { C, type ConsoleUserDoc, type RefreshTokenDoc } from './collections.js';
import { insertOrConflict, strip, type MongoContext } from './context.js';
import type { TenantRefs } from './entity.js';

const toConsoleUser = (d: ConsoleUserDoc): ConsoleUser => strip(d, 'password_hash');

export function createConsoleUserRepo(ctx: MongoContext, refs: TenantRefs): Store['consoleUsers'] {
  const users = ctx.coll<ConsoleUserDoc>(C.consoleUsers);
  return {
    async create(input) {
      return ctx.write(async ({ session }) => {
        if (input.tenant_id !== null) await refs.requireTenant(session, input.tenant_id);
        const now = ctx.now();
        const user: ConsoleUser = {
          id: ctx.newId(),
          tenant_id: input.tenant_id,
          email: normaliseEmail(input.email),
          console_role: input.console_role,
          created_at: now,
          updated_at: now,
        };
        await insertOrConflict(
          () => users.insertOne({ _id: user.id, ...user, password_hash: input.password_hash }, { session }),
          () => conflict('email', 'already taken'),
        );
        return user;
      });
    },
    async get(id) {
      const doc = await users.findOne({ _id: id });
      return doc ? toConsoleUser(doc) : null;
    },
    async findByEmail(email) {
      const doc = await users.findOne({ email: normaliseEmail(email) });
      return doc ? { ...toConsoleUser(doc), password_hash: doc.password_hash } : null;
    },
    list: (tenantId, opts) => ctx.listPage(users, { tenant_id: tenantId }, opts, 'console_users', 'asc', toConsoleUser),
  };
}

export function createRefreshTokenRepo(ctx: MongoContext): Store['refreshTokens'] {
  const tokens = ctx.coll<RefreshTokenDoc>(C.refreshTokens);
  const users = ctx.coll<ConsoleUserDoc>(C.consoleUsers);
  return {
    async create(rec) {
      await ctx.write(async ({ session }) => {
        // A guard write: a user deleted concurrently conflicts instead of leaving an orphan token.
        const owner = await users.updateOne({ _id: rec.user_id }, { $inc: { write_guard: 1 } }, { session });
        if (owner.matchedCount === 0) throw notFound('user_id', 'no such console user');
        const row: RefreshTokenRecord = { ...rec, used_at: null, revoked_at: null };
        await insertOrConflict(
          () => tokens.insertOne({ _id: rec.id, ...row }, { session }),
          () => conflict('id', 'refresh token already exists'),
        );
      });
    },
    async findByHash(tokenHash) {
      const doc = await tokens.findOne({ token_hash: tokenHash });
      return doc ? strip(doc) : null;
    },
    // The filter is the atomicity: of two concurrent refreshes with one token, one wins.
    async consume(id, now) {
      return (await tokens.updateOne({ _id: id, used_at: null, revoked_at: null }, { $set: { used_at: now } })).matchedCount > 0;
    },
    async revokeFamily(familyId, now) {
      await tokens.updateMany({ family_id: familyId, revoked_at: null }, { $set: { revoked_at: now } });
    },
  };
}
