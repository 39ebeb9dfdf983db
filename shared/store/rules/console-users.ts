/**
 * Console account rules every adapter applies inside its transactions.
 *
 * Identity: an e-mail is unique within a tenant (and among platform operators), not across the
 * platform. A tenant creating an account with an e-mail another tenant already uses gets the
 * same answer as for a fresh e-mail, so accounts cannot be used to learn who else is on the
 * platform; sign-in tells the accounts of one e-mail apart by password (api/auth/sessions.ts).
 *
 * Sessions: changing an account's role, disabling it or changing its password ends every session
 * it has: the session version moves (access tokens issued under the old one are refused) and its
 * refresh tokens are revoked, in the same transaction as the change.
 */
import type { ConsoleUser } from '../../domain.js';
import type { ConsoleUserInput, ConsoleUserPatch } from '../port.js';
import { conflict } from './errors.js';
import { normaliseEmail } from './platform.js';

/** A new account as both adapters store it (the password hash is stored beside it). */
export function newConsoleUser(input: ConsoleUserInput, id: string, now: number): ConsoleUser {
  return {
    id,
    tenant_id: input.tenant_id,
    // Stored lowercased so uniqueness is case-insensitive and lookups hit the index.
    email: normaliseEmail(input.email),
    console_role: input.console_role,
    disabled_at: null,
    session_version: 0,
    created_at: now,
    updated_at: now,
  };
}

/** True when applying `patch` to `before` must end the account's sessions. */
export function endsSessions(before: ConsoleUser, patch: ConsoleUserPatch): boolean {
  if (patch.password_hash !== undefined) return true;
  if (patch.console_role !== undefined && patch.console_role !== before.console_role) return true;
  return patch.disabled !== undefined && patch.disabled !== (before.disabled_at !== null);
}

/** The account after `patch`, stamped `now` (the session version moved when sessions end). */
export function patchedConsoleUser(before: ConsoleUser, patch: ConsoleUserPatch, now: number): ConsoleUser {
  const disabledAt = patch.disabled === undefined ? before.disabled_at : patch.disabled ? (before.disabled_at ?? now) : null;
  return {
    ...before,
    console_role: patch.console_role ?? before.console_role,
    disabled_at: disabledAt,
    session_version: before.session_version + (endsSessions(before, patch) ? 1 : 0),
    updated_at: now,
  };
}

function isActiveOwner(user: ConsoleUser | null): boolean {
  return user !== null && user.console_role === 'owner' && user.disabled_at === null;
}

/**
 * A tenant keeps at least one active owner: someone must be able to manage its accounts. `after`
 * is null for a deletion; `activeOwners` counts the tenant's active owners before the change.
 */
export function requireOwnerRemains(before: ConsoleUser, after: ConsoleUser | null, activeOwners: number): void {
  if (before.tenant_id === null || !isActiveOwner(before) || isActiveOwner(after)) return;
  if (activeOwners <= 1) throw conflict('id', 'the tenant must keep at least one active owner');
}

/**
 * Accounts sharing an e-mail, in the order sign-in prefers them when one password matches several:
 * the platform operator first, then the oldest.
 */
export function compareSignInOrder(a: ConsoleUser, b: ConsoleUser): number {
  if ((a.tenant_id === null) !== (b.tenant_id === null)) return a.tenant_id === null ? -1 : 1;
  return a.created_at - b.created_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** The most accounts one e-mail is looked up with (one per tenant at most): a bound, not a rule. */
export const MAX_ACCOUNTS_PER_EMAIL_LOOKUP = 100;
