/**
 * What differs between two policy versions' contents, entity by entity: settings, policies,
 * rules, role↔policy and user↔role links, device owners. Lists are capped (a version that
 * registered 10,000 devices says so in its counts, not in 10,000 lines); counts are exact.
 */
import { canonicalJson } from '../store/rules/policy-history.js';
import type { ContentPolicy, ContentRule, ContentSettings, PolicyContent } from './content.js';

export const MAX_DIFF_ITEMS = 1000;

export interface Changes<T, K = string> {
  added: T[];
  removed: T[];
  changed: Array<{ id: K; before: T; after: T }>;
  counts: { added: number; removed: number; changed: number };
}

export interface LinkChanges<T> {
  added: T[];
  removed: T[];
  counts: { added: number; removed: number };
}

export interface VersionDiff {
  from: number;
  to: number;
  settings: { before: ContentSettings; after: ContentSettings } | null;
  policies: Changes<ContentPolicy>;
  rules: Changes<ContentRule>;
  role_policies: LinkChanges<{ role_id: string; policy_id: string }>;
  user_roles: LinkChanges<{ user_id: string; role_id: string }>;
  devices: Changes<{ id: string; user_id: string | null }>;
  /** Decision inputs that differ, over every section. */
  total: number;
}

function byId<T extends { id: string }>(before: readonly T[], after: readonly T[], same: (a: T, b: T) => boolean): Changes<T> {
  const old = new Map(before.map((x) => [x.id, x]));
  const now = new Map(after.map((x) => [x.id, x]));
  const out: Changes<T> = { added: [], removed: [], changed: [], counts: { added: 0, removed: 0, changed: 0 } };
  for (const [id, x] of now) {
    const was = old.get(id);
    if (was === undefined) {
      if (out.counts.added++ < MAX_DIFF_ITEMS) out.added.push(x);
    } else if (!same(was, x)) {
      if (out.counts.changed++ < MAX_DIFF_ITEMS) out.changed.push({ id, before: was, after: x });
    }
  }
  for (const [id, x] of old) if (!now.has(id) && out.counts.removed++ < MAX_DIFF_ITEMS) out.removed.push(x);
  return out;
}

function links<T extends object>(before: readonly T[], after: readonly T[], key: (x: T) => string): LinkChanges<T> {
  const old = new Set(before.map(key));
  const now = new Set(after.map(key));
  const out: LinkChanges<T> = { added: [], removed: [], counts: { added: 0, removed: 0 } };
  for (const x of after) if (!old.has(key(x)) && out.counts.added++ < MAX_DIFF_ITEMS) out.added.push(x);
  for (const x of before) if (!now.has(key(x)) && out.counts.removed++ < MAX_DIFF_ITEMS) out.removed.push(x);
  return out;
}

export function diffVersions(from: PolicyContent, to: PolicyContent): VersionDiff {
  const settingsChanged = canonicalJson(from.settings) !== canonicalJson(to.settings);
  const diff: VersionDiff = {
    from: from.version,
    to: to.version,
    settings: settingsChanged ? { before: from.settings, after: to.settings } : null,
    // Names are display data (not versioned on their own): a policy differs by its severity.
    policies: byId(from.policies, to.policies, (a, b) => a.severity === b.severity),
    rules: byId(from.rules, to.rules, (a, b) => canonicalJson(a) === canonicalJson(b)),
    role_policies: links(from.role_policies, to.role_policies, (l) => `${l.role_id}\u0000${l.policy_id}`),
    user_roles: links(from.user_roles, to.user_roles, (l) => `${l.user_id}\u0000${l.role_id}`),
    devices: byId(from.devices, to.devices, (a, b) => a.user_id === b.user_id),
    total: 0,
  };
  const sum = (c: { counts: Record<string, number> }) => Object.values(c.counts).reduce((a, b) => a + b, 0);
  diff.total = (settingsChanged ? 1 : 0) + sum(diff.policies) + sum(diff.rules) + sum(diff.role_policies) + sum(diff.user_roles) + sum(diff.devices);
  return diff;
}
