/**
 * Replies that carry records another permission guards: an explanation names the roles, policies
 * and rules that decided; a policy version's content holds the rules, role and user links and
 * device owners. A console role holds every tenant read permission, an API key only its scopes, so
 * such a route leaves out each part whose permission the caller lacks, and says which
 * (`redacted`): a key scoped to `usage:read` learns no more than the usage records it may read.
 */
import type { ReadableNames } from '../export-names.js';
import type { Principal } from '../types.js';
import { holds, type Permission } from './permissions.js';

/** The permissions among `needed` the caller does not hold, in the order given. */
export function lacking(principal: Principal, needed: readonly Permission[]): Permission[] {
  return needed.filter((permission) => !holds(principal, permission));
}

/** The names an export may put next to ids (export-names.ts): each needs its read permission. */
export function readableNames(principal: Principal): ReadableNames {
  return { users: holds(principal, 'users:read'), policies: holds(principal, 'policies:read'), rules: holds(principal, 'rules:read') };
}
