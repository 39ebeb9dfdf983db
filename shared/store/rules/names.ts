/**
 * Natural keys: the names people use for roles and policies, and device users' e-mails, are
 * unique per tenant, so re-running a setup script cannot create "engineer" twice. Uniqueness is
 * on a normalised key, stored next to the value, so "Field  Engineer" and "field engineer" are
 * the same name in every adapter (no collation differences between SQLite and MongoDB).
 *
 * Databases from before this rule may hold duplicates. The upgrade keeps the oldest record's
 * name and renames the others "<name> (2)", "<name> (3)"…; of users sharing an e-mail, the
 * oldest keeps it and the others lose it (a second mailbox cannot be invented). Every change is
 * written to the tenant's audit trail as a system entry, so admins can find and fix them.
 */
import type { AuditInput } from '../port.js';

/** NFKC (full-width → ASCII), trimmed, inner whitespace collapsed, lower-cased. */
export function nameKey(name: string): string {
  return name.normalize('NFKC').trim().replace(/\s+/g, ' ').toLowerCase();
}

export function emailKey(email: string | null | undefined): string | null {
  if (email === null || email === undefined) return null;
  const key = email.normalize('NFKC').trim().toLowerCase();
  return key === '' ? null : key;
}

export interface NamedRow {
  id: string;
  tenant_id: string;
  name: string;
  created_at: number;
}

export interface EmailRow {
  id: string;
  tenant_id: string;
  email: string | null;
  created_at: number;
}

const byAge = <T extends { id: string; created_at: number }>(a: T, b: T): number =>
  a.created_at - b.created_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * The renames that make names unique per tenant: the oldest of a group keeps its name, the
 * others get the first free " (n)" suffix (free among every name of the tenant, old and new).
 */
export function dedupeNames(rows: readonly NamedRow[]): Array<{ row: NamedRow; name: string }> {
  const taken = new Set(rows.map((r) => `${r.tenant_id}\u0000${nameKey(r.name)}`));
  const seen = new Set<string>();
  const renames: Array<{ row: NamedRow; name: string }> = [];
  for (const row of [...rows].sort(byAge)) {
    const key = `${row.tenant_id}\u0000${nameKey(row.name)}`;
    if (!seen.has(key)) {
      seen.add(key);
      continue;
    }
    const base = row.name.trim();
    let n = 2;
    let name = `${base} (${n})`;
    while (taken.has(`${row.tenant_id}\u0000${nameKey(name)}`)) name = `${base} (${++n})`;
    taken.add(`${row.tenant_id}\u0000${nameKey(name)}`);
    seen.add(`${row.tenant_id}\u0000${nameKey(name)}`);
    renames.push({ row, name });
  }
  return renames;
}

/** Users whose e-mail must be cleared: every holder of a tenant's e-mail but the oldest. */
export function dedupeEmails(rows: readonly EmailRow[]): EmailRow[] {
  const seen = new Set<string>();
  const cleared: EmailRow[] = [];
  for (const row of [...rows].sort(byAge)) {
    const key = emailKey(row.email);
    if (key === null) continue;
    const scoped = `${row.tenant_id}\u0000${key}`;
    if (seen.has(scoped)) cleared.push(row);
    else seen.add(scoped);
  }
  return cleared;
}

/** The audit entry recording one change the upgrade made to a tenant's record. */
export function dedupeAuditEntry(
  resourceType: 'role' | 'policy' | 'user',
  row: { id: string; tenant_id: string },
  before: Record<string, unknown>,
  after: Record<string, unknown>,
  at: number,
): AuditInput {
  return {
    tenant_id: row.tenant_id,
    actor_kind: 'system',
    actor_id: null,
    actor_label: 'schema upgrade: unique names',
    action: `${resourceType === 'policy' ? 'policies' : `${resourceType}s`}.deduplicate`,
    resource_type: resourceType,
    resource_id: row.id,
    method: null,
    path: null,
    status_code: null,
    ip: null,
    user_agent: null,
    before,
    after,
    at,
  };
}
