/**
 * Console sign-in: console users (people, not device users) and rotating refresh tokens.
 */
import { ALERT_STEP_EVENTS } from '../../bus-events.js';
import type { ConsoleUser } from '../../domain.js';
import type { ConsoleUserInput, ConsoleUserWithPassword, RefreshTokenRecord, Store } from '../port.js';
import { MAX_ACCOUNTS_PER_EMAIL_LOOKUP, compareSignInOrder, newConsoleUser, patchedConsoleUser, requireOwnerRemains } from '../rules/console-users.js';
import { ACTIVE_ALERT_STATUSES, ALERT_WORKFLOW_FIELDS, unassignDeletedAssignee } from '../rules/alerts.js';
import { conflict, notFound } from '../rules/errors.js';
import { normaliseEmail } from '../rules/platform.js';
import { C, type AlertDoc, type AlertEventDoc, type ConsoleUserDoc, type RefreshTokenDoc } from './collections.js';
import { insertOrConflict, strip, type MongoContext } from './context.js';
import type { Document, SessionLike } from './db-like.js';
import type { TenantRefs } from './entity.js';
import { toAlert } from './usage-repo.js';
import type { MongoOutbox } from './webhook-repos.js';

/** Accounts written before schema version 2 lack the lifecycle fields: read them as never changed. */
const toConsoleUser = (d: ConsoleUserDoc): ConsoleUser => ({
  ...strip(d, 'password_hash'),
  disabled_at: d.disabled_at ?? null,
  session_version: d.session_version ?? 0,
});
const withPassword = (d: ConsoleUserDoc): ConsoleUserWithPassword => ({ ...toConsoleUser(d), password_hash: d.password_hash });

/**
 * Inserts one console account inside the caller's transaction (consoleUsers.create, and
 * tenants.createWithOwner with its tenant); CONFLICT (email) within its scope.
 */
export async function insertConsoleUser(ctx: MongoContext, session: SessionLike, input: ConsoleUserInput): Promise<ConsoleUser> {
  const user = newConsoleUser(input, ctx.newId(), ctx.now());
  await insertOrConflict(
    () => ctx.coll<ConsoleUserDoc>(C.consoleUsers).insertOne({ _id: user.id, ...user, password_hash: input.password_hash }, { session }),
    () => conflict('email', 'already taken'),
  );
  return user;
}

export function createConsoleUserRepo(ctx: MongoContext, refs: TenantRefs, outbox: MongoOutbox): Store['consoleUsers'] {
  const users = ctx.coll<ConsoleUserDoc>(C.consoleUsers);
  const tokens = ctx.coll<RefreshTokenDoc>(C.refreshTokens);
  const alerts = ctx.coll<AlertDoc>(C.alerts);
  const alertEvents = ctx.coll<AlertEventDoc>(C.alertEvents);

  /**
   * The account in `scope`, read with a guard write so two changes to one tenant's owners conflict
   * (snapshot isolation would otherwise let two owners disable each other at once).
   */
  const lockInScope = async (session: SessionLike, scope: string | null, id: string): Promise<ConsoleUser | null> => {
    const doc = await users.findOneAndUpdate(
      { _id: id, tenant_id: scope },
      { $inc: { write_guard: 1 } },
      { session, returnDocument: 'after' },
    );
    if (!doc) return null;
    if (doc.tenant_id !== null) await refs.requireTenant(session, doc.tenant_id);
    return toConsoleUser(doc);
  };
  const activeOwners = async (session: SessionLike, user: ConsoleUser): Promise<number> =>
    user.tenant_id === null
      ? 0
      : users.countDocuments({ tenant_id: user.tenant_id, console_role: 'owner', disabled_at: null }, { session });

  return {
    async create(input) {
      return ctx.write(async ({ session }) => {
        if (input.tenant_id !== null) await refs.requireTenant(session, input.tenant_id);
        return insertConsoleUser(ctx, session, input);
      });
    },
    async get(id) {
      const doc = await users.findOne({ _id: id });
      return doc ? toConsoleUser(doc) : null;
    },
    async getWithPassword(id) {
      const doc = await users.findOne({ _id: id });
      return doc ? withPassword(doc) : null;
    },
    async findByEmail(email) {
      return (await this.findAllByEmail(email))[0] ?? null;
    },
    async findAllByEmail(email) {
      const docs = await users.find({ email: normaliseEmail(email) }, { limit: MAX_ACCOUNTS_PER_EMAIL_LOOKUP }).toArray();
      return docs.map(withPassword).sort(compareSignInOrder);
    },
    list: (tenantId, opts) =>
      ctx.listPage(
        users,
        { tenant_id: tenantId, ...(opts?.console_role !== undefined && { console_role: opts.console_role }) },
        opts,
        'console_users',
        'asc',
        toConsoleUser,
      ),
    async update(scope, id, patch, check) {
      return ctx.write(async ({ session }) => {
        const before = await lockInScope(session, scope, id);
        if (!before) return null;
        check?.(before);
        const now = ctx.now();
        const after = patchedConsoleUser(before, patch, now);
        requireOwnerRemains(before, after, await activeOwners(session, before));
        const { id: _id, ...fields } = after;
        await users.updateOne(
          { _id: id },
          { $set: { ...fields, ...(patch.password_hash !== undefined && { password_hash: patch.password_hash }) } },
          { session },
        );
        if (after.session_version !== before.session_version) {
          await tokens.updateMany({ user_id: id, revoked_at: null }, { $set: { revoked_at: now } }, { session });
        }
        return after;
      });
    },
    async delete(scope, id, check, actor) {
      return ctx.write(async ({ session }) => {
        const before = await lockInScope(session, scope, id);
        if (!before) return null;
        check?.(before);
        requireOwnerRemains(before, null, await activeOwners(session, before));
        // Operators are nobody's assignee; a tenant's account only its own tenant's. An assignment
        // racing this delete conflicts on the account's write_guard (alerts.act bumps it).
        const assigned =
          before.tenant_id === null
            ? []
            : await alerts
                .find({ tenant_id: before.tenant_id, assigned_to: id, status: { $in: [...ACTIVE_ALERT_STATUSES] } }, { session, sort: { _id: 1 } })
                .toArray();
        const unassigned = unassignDeletedAssignee(
          assigned.map(toAlert),
          actor ?? { by: null, at: ctx.now() },
          ctx.newId,
        );
        for (const { alert, step } of unassigned) {
          const set: Document = {};
          for (const field of ALERT_WORKFLOW_FIELDS) set[field] = alert[field];
          await alerts.updateOne({ _id: alert.id, tenant_id: alert.tenant_id }, { $set: set }, { session });
          await alertEvents.insertOne({ _id: step.id, ...step }, { session });
        }
        // Their webhook deliveries (alert.assigned, assigned_to null) commit with the steps.
        if (before.tenant_id !== null) await outbox(before.tenant_id, ALERT_STEP_EVENTS.unassigned, unassigned.map((u) => u.alert), session);
        await tokens.deleteMany({ user_id: id }, { session });
        if ((await users.deleteOne({ _id: id }, { session })).deletedCount === 0) return null;
        return { unassigned };
      });
    },
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
    // One seek of the (family_id, revoked_at) index (collections.ts); any revoked token of the
    // family counts, as a refresh racing the sign-out may add one after revokeFamily ran.
    async familyRevoked(familyId) {
      return (await tokens.findOne({ family_id: familyId, revoked_at: { $ne: null } })) !== null;
    },
  };
}
