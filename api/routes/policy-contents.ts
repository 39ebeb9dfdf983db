/**
 * What the policy lifecycle routes share: the live content (from the same snapshot the workers
 * compile), stored versions' contents (immutable, so a small cache per API process spares
 * rebuilding one for every explained event of a version), and the references a draft may name.
 */
import { createError } from '../../shared/errors.js';
import { contentFromSnapshot, type PolicyContent } from '../../shared/policy/content.js';
import type { PolicyDraft } from '../../shared/policy/draft.js';
import type { Store } from '../../shared/store/port.js';

/** Versions kept per API process; a version's content never changes, so entries never go stale. */
const CACHED_VERSIONS = 16;

export class PolicyContents {
  readonly #store: Store;
  readonly #cache = new Map<string, PolicyContent>();

  constructor(store: Store) {
    this.#store = store;
  }

  /** The tenant's live content and alert window. */
  async live(tenantId: string): Promise<{ content: PolicyContent; alertWindowS: number }> {
    const snap = await this.#store.policySnapshot(tenantId);
    if (!snap) throw createError('NOT_FOUND', 'tenant not found');
    return { content: contentFromSnapshot(snap), alertWindowS: snap.tenant.alert_window_s };
  }

  /**
   * A stored version's content; UNPROCESSABLE naming `field` when the version has none (older
   * than the tenant's history, or not a version of this tenant).
   */
  async at(tenantId: string, version: number, field: string): Promise<PolicyContent> {
    const key = `${tenantId}\u0000${version}`;
    const hit = this.#cache.get(key);
    if (hit) {
      // Refresh its place: the map's order is the eviction order.
      this.#cache.delete(key);
      this.#cache.set(key, hit);
      return hit;
    }
    const content = await this.#store.policyVersions.content(tenantId, version);
    if (content === null) {
      const storage = await this.#store.policyVersions.storage(tenantId);
      const since = storage.first_version === null ? 'this tenant has no policy history' : `the policy history starts at version ${storage.first_version}`;
      const message = `version ${version} has no stored content: ${since}`;
      throw createError('UNPROCESSABLE', `${field}: ${message}`, [{ field, message }]);
    }
    this.#cache.set(key, content);
    if (this.#cache.size > CACHED_VERSIONS) this.#cache.delete(this.#cache.keys().next().value!);
    return content;
  }

  /** The roles and users a draft names that exist in the tenant (applyDraft refuses the others). */
  async draftReferences(tenantId: string, draft: PolicyDraft): Promise<{ roles: Set<string>; users: Set<string> }> {
    const roleIds = new Set<string>();
    const userIds = new Set<string>();
    for (const r of draft.rules?.add ?? []) if (r.role_id) roleIds.add(r.role_id);
    for (const r of draft.rules?.change ?? []) if (r.role_id) roleIds.add(r.role_id);
    for (const l of draft.role_policies?.assign ?? []) roleIds.add(l.role_id);
    for (const l of draft.user_roles?.assign ?? []) {
      roleIds.add(l.role_id);
      userIds.add(l.user_id);
    }
    const roles = new Set<string>();
    const users = new Set<string>();
    for (const id of roleIds) if (await this.#store.roles.get(tenantId, id)) roles.add(id);
    for (const id of userIds) if (await this.#store.users.get(tenantId, id)) users.add(id);
    return { roles, users };
  }
}
