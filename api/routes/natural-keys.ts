/**
 * Where a route takes a device user, role or policy, it also takes the natural key people know it
 * by (unique per tenant: rules/names.ts): a user's e-mail, a role's or a policy's name. An id is
 * tried first, so a record is always reachable by its id; only then the natural key, matched like
 * the uniqueness rule (case, spacing and width do not matter). Resolution happens in the caller's
 * tenant: another tenant's id or name is simply not found.
 */
import { z } from 'zod';
import type { Policy, Role, User } from '../../shared/domain.js';
import type { Store } from '../../shared/store/port.js';
import { referenceNotFound } from '../schemas/common.js';

export type RefKind = 'user' | 'role' | 'policy';
type RecordOf<K extends RefKind> = K extends 'user' ? User : K extends 'role' ? Role : Policy;

export const REF_DESCRIPTIONS: Record<RefKind, string> = {
  user: 'device user id or e-mail',
  role: 'role id or name',
  policy: 'policy id or name',
};

/** An id, e-mail or name: as long as the longest of them (an e-mail, 320). */
export const RefSchema = z.string().trim().min(1).max(320);

/** The schema of a reference field of `kind`, documented as such. */
export function refField(kind: RefKind) {
  return RefSchema.describe(REF_DESCRIPTIONS[kind]);
}

export async function resolveRef<K extends RefKind>(store: Store, tenantId: string, kind: K, ref: string): Promise<RecordOf<K> | null> {
  switch (kind) {
    case 'user':
      return ((await store.users.get(tenantId, ref)) ?? (ref.includes('@') ? await store.users.findByEmail(tenantId, ref) : null)) as RecordOf<K> | null;
    case 'role':
      return ((await store.roles.get(tenantId, ref)) ?? (await store.roles.findByName(tenantId, ref))) as RecordOf<K> | null;
    default:
      return ((await store.policies.get(tenantId, ref)) ?? (await store.policies.findByName(tenantId, ref))) as RecordOf<K> | null;
  }
}

/** The id a reference names, or the reference itself when nothing matches (the caller's 404 names it). */
export async function idOrSelf(store: Store, tenantId: string, kind: RefKind, ref: string): Promise<string> {
  return (await resolveRef(store, tenantId, kind, ref))?.id ?? ref;
}

/** The id a reference names; 404 naming `field` when it names nothing in the tenant. */
export async function requireRef(store: Store, tenantId: string, kind: RefKind, ref: string, field: string): Promise<string> {
  const found = await resolveRef(store, tenantId, kind, ref);
  if (found === null) referenceNotFound(field, kind === 'user' ? 'user' : kind);
  return found.id;
}
