/**
 * Names next to ids in CSV exports: the device user's name, the policy's name and a readable rule
 * ("deny dropbox/upload_file") for each row. Looked up per page through the store, remembered for
 * the rest of the export so a million rows cost one lookup per distinct id; the memory is bounded
 * (a full cache is dropped and refilled), so an export of any size stays within a few pages.
 * A record deleted since the row was written has no name: the cell stays empty, the id remains.
 */
import type { PolicyRule } from '../shared/domain.js';
import type { Store } from '../shared/store/port.js';
import type { ExportLabels } from './export.js';

const MAX_CACHED = 10_000;

class NameCache {
  readonly #names = new Map<string, string | null>();

  constructor(private readonly lookup: (id: string) => Promise<string | null>) {}

  async of(id: string | null): Promise<string | null> {
    if (id === null) return null;
    const hit = this.#names.get(id);
    if (hit !== undefined || this.#names.has(id)) return hit ?? null;
    const name = await this.lookup(id);
    if (this.#names.size >= MAX_CACHED) this.#names.clear();
    this.#names.set(id, name);
    return name;
  }
}

export function ruleText(rule: Pick<PolicyRule, 'permission' | 'app' | 'action'>): string {
  return `${rule.permission} ${rule.app}/${rule.action}`;
}

interface Named {
  user_id: string | null;
  policy_id: string | null;
  rule_id: string | null;
}

/** Which of the names the caller may read (users:read, policies:read, rules:read); default all. */
export interface ReadableNames {
  users: boolean;
  policies: boolean;
  rules: boolean;
}

/**
 * user_name, policy_name and rule columns for rows carrying user_id, policy_id and rule_id. A
 * name the caller may not read stays empty (the columns stay, so a file's layout never depends on
 * who downloaded it).
 */
export function decisionLabels<T extends Named>(store: Store, tenantId: string, readable: ReadableNames = { users: true, policies: true, rules: true }): ExportLabels<T> {
  const hidden = new NameCache(async () => null);
  const users = readable.users ? new NameCache(async (id) => (await store.users.get(tenantId, id))?.name ?? null) : hidden;
  const policies = readable.policies ? new NameCache(async (id) => (await store.policies.get(tenantId, id))?.name ?? null) : hidden;
  const rules = readable.rules
    ? new NameCache(async (id) => {
        const rule = await store.rules.get(tenantId, id);
        return rule ? ruleText(rule) : null;
      })
    : hidden;
  return {
    columns: [
      { after: 'user_id' as keyof T & string, name: 'user_name' },
      { after: 'policy_id' as keyof T & string, name: 'policy_name' },
      { after: 'rule_id' as keyof T & string, name: 'rule' },
    ],
    async resolve(rows) {
      const out: Array<Record<string, string | null>> = [];
      for (const r of rows) {
        out.push({ user_name: await users.of(r.user_id), policy_name: await policies.of(r.policy_id), rule: await rules.of(r.rule_id) });
      }
      return out;
    },
  };
}
