/**
 * What the console-account routes share (tenant users managing their tenant's accounts, operators
 * managing tenant owners): creating an account without revealing other tenants' e-mails,
 * deleting one (which unassigns its alerts), and announcing ended sessions on the bus so every
 * process closes what the account has open.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { hashPassword } from '../shared/auth/passwords.js';
import { ALERT_STEP_EVENTS, type ConsoleUserRevokedReason } from '../shared/bus-events.js';
import type { ConsoleRole, ConsoleUser, Tenant } from '../shared/domain.js';
import { createError, isEdgeplaneError } from '../shared/errors.js';
import type { AlertActor, ConsoleUserDeletion, ConsoleUserPatch } from '../shared/store/port.js';
import { audit } from './audit.js';
import { principalOf } from './auth/guard.js';

/**
 * The hash of a new account's password with the salt of the e-mail's existing accounts (other
 * tenants included), so sign-in checks them all with one derivation. The work is the same whether
 * or not the e-mail exists elsewhere.
 */
async function newAccountHash(app: FastifyInstance, email: string, password: string): Promise<string> {
  const existing = await app.store.consoleUsers.findByEmail(email);
  return hashPassword(password, existing?.password_hash);
}

/** Creates an account (newAccountHash); only an account in the same scope conflicts. */
export async function createConsoleAccount(
  app: FastifyInstance,
  input: { tenant_id: string | null; email: string; console_role: ConsoleRole; password: string },
  emailField: string,
): Promise<ConsoleUser> {
  const password_hash = await newAccountHash(app, input.email, input.password);
  try {
    return await app.store.consoleUsers.create({ tenant_id: input.tenant_id, email: input.email, console_role: input.console_role, password_hash });
  } catch (err) {
    if (isEdgeplaneError(err) && err.code === 'CONFLICT') {
      throw createError('CONFLICT', 'a console user with this email already exists in this tenant', [
        { field: emailField, message: 'already in use' },
      ]);
    }
    throw err;
  }
}

/**
 * A new tenant with its first owner, in one store transaction: both or neither (newAccountHash).
 * A new tenant has no accounts, so its owner's e-mail cannot conflict.
 */
export async function createTenantWithOwner(
  app: FastifyInstance,
  input: Parameters<FastifyInstance['store']['tenants']['create']>[0],
  owner: { email: string; password: string },
): Promise<{ tenant: Tenant; owner: ConsoleUser }> {
  return app.store.tenants.createWithOwner(input, { email: owner.email, password_hash: await newAccountHash(app, owner.email, owner.password) });
}

/** A new password for an account, hashed with its own (the e-mail's shared) salt. */
export async function passwordPatch(app: FastifyInstance, userId: string, password: string): Promise<ConsoleUserPatch> {
  const account = await app.store.consoleUsers.getWithPassword(userId);
  return { password_hash: await hashPassword(password, account?.password_hash) };
}

function reasonFor(before: ConsoleUser, after: ConsoleUser | null, patch: ConsoleUserPatch): ConsoleUserRevokedReason | null {
  if (after === null) return 'deleted';
  if (after.session_version === before.session_version) return null;
  if (patch.password_hash !== undefined) return 'password_changed';
  if (after.disabled_at !== null && before.disabled_at === null) return 'disabled';
  if (after.console_role !== before.console_role) return 'role_changed';
  // Enabled again: it had no live sessions to end.
  return null;
}

/** Publishes 'console-user.revoked' when the change ended the account's sessions. */
export function announceEndedSessions(app: FastifyInstance, before: ConsoleUser, after: ConsoleUser | null, patch: ConsoleUserPatch = {}): void {
  const reason = reasonFor(before, after, patch);
  if (reason !== null) app.bus.publish('console-user.revoked', { user_id: before.id, tenant_id: before.tenant_id, reason });
}

/**
 * Deletes an account through `remove` (the store's delete, with the route's check), auditing it
 * as it was. The store unassigns the account's alerts in the same transaction, as steps by the
 * caller, with their webhook deliveries (alert.assigned); each is announced as the alert routes
 * announce an unassignment, so live feeds and Firebase stop showing the deleted account as the
 * assignee and the webhook deliverer wakes.
 * False when there was no such account.
 */
export async function deleteConsoleAccount(
  app: FastifyInstance,
  request: FastifyRequest,
  before: ConsoleUser,
  remove: (actor: AlertActor) => Promise<ConsoleUserDeletion | null>,
): Promise<boolean> {
  audit(request, { resource_id: before.id, before });
  const deletion = await remove({ by: principalOf(request).actorId, at: app.clock() });
  if (deletion === null) return false;
  for (const { alert, step } of deletion.unassigned) {
    app.bus.publish(ALERT_STEP_EVENTS[step.kind], { tenant_id: alert.tenant_id, alert, step });
  }
  return true;
}
