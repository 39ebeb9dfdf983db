/**
 * How a tenant keeps every policy version's content (issue #12: explain a decision at the version
 * that made it, diff, restore). Decided here once; both adapters call these functions inside the
 * transaction that bumps the version.
 *
 * Storage: an interval history, not a snapshot per version. Each decision input (settings, a
 * policy, a rule, a role↔policy or user↔role link, a device's owner) is one entry valid over
 * [valid_from, valid_to) versions; a change closes the open entry of what changed and opens a new
 * one. A version therefore costs only what it changed (one device registered: one entry), where a
 * snapshot would copy the whole tenant each time (a 10,000-device tenant registering its devices
 * one by one would store 50 million device rows). Reading version n selects the entries whose
 * interval contains n: one pass over the tenant's history.
 *
 * What changed is found by re-examining a SCOPE (touch) named by the writer: "rule R", "policy P
 * with its rules and links", "user U's links and devices"... The scope's live rows are compared
 * with its open entries, keyed, so a cascade (deleting a role drops its links and scoped rules) is
 * captured without the writer listing each row. A writer that names no scope gets 'all'.
 */
import type { Escalation, Remediation } from '../../domain.js';
import { createError } from '../../errors.js';
import type { ContentPolicy, ContentRule, ContentSettings, PolicyContent } from '../../policy/content.js';
import { normaliseContent } from '../../policy/content.js';
import type { Effect, Severity } from '../../mqtt/payloads.js';
import type { PolicyChangeScope } from '../port.js';

export const HISTORY_KINDS = ['settings', 'policy', 'rule', 'role_policy', 'user_role', 'device'] as const;
export type HistoryKind = (typeof HISTORY_KINDS)[number];

/**
 * One decision input. `content` (canonical JSON) is what decides and is compared; `info` is
 * display data (a policy's name) kept alongside, never compared: renaming does not bump a version.
 * ref1/ref2 are the ids a scope selects by:
 *   rule: policy_id, role_id · role_policy: role_id, policy_id · user_role: user_id, role_id ·
 *   device: user_id.
 */
export interface HistoryEntry {
  kind: HistoryKind;
  key: string;
  ref1: string | null;
  ref2: string | null;
  content: string;
  info: string | null;
}

export type PolicyTouch =
  | { kind: 'all' }
  | { kind: 'settings' }
  | { kind: 'policy'; id: string }
  | { kind: 'rule'; id: string }
  | { kind: 'role'; id: string }
  | { kind: 'user'; id: string }
  | { kind: 'device'; id: string }
  | { kind: 'user_role'; user_id: string; role_id: string }
  | { kind: 'role_policy'; role_id: string; policy_id: string };

/** What a version's touches can alter (port.ts PolicyChangeScope); a role's removal unlinks its users. */
export function changeScope(touches: readonly PolicyTouch[]): PolicyChangeScope {
  if (touches.length === 0) return 'inventory';
  for (const touch of touches) {
    switch (touch.kind) {
      case 'settings':
      case 'policy':
      case 'rule':
      case 'role_policy':
        continue;
      default:
        return 'inventory';
    }
  }
  return 'rules';
}

/** A writer's touch or touches as a list; none named means the whole tenant ('all'). */
export function touchList(touch: PolicyTouch | readonly PolicyTouch[] | undefined): readonly PolicyTouch[] {
  if (touch === undefined) return [{ kind: 'all' }];
  return Array.isArray(touch) ? touch : [touch as PolicyTouch];
}

export type ScopeQuery =
  | { kind: HistoryKind; by: 'all' }
  | { kind: HistoryKind; by: 'key'; value: string }
  | { kind: HistoryKind; by: 'ref1' | 'ref2'; value: string };

/** NUL cannot occur in ids, so a pair maps to one key without ambiguity. */
export const pairKey = (a: string, b: string): string => `${a}\u0000${b}`;
export const SETTINGS_KEY = '';

/** The scopes a touch re-examines. */
export function scopesOf(touch: PolicyTouch): ScopeQuery[] {
  switch (touch.kind) {
    case 'all':
      return HISTORY_KINDS.map((kind) => ({ kind, by: 'all' as const }));
    case 'settings':
      return [{ kind: 'settings', by: 'key', value: SETTINGS_KEY }];
    case 'policy':
      return [
        { kind: 'policy', by: 'key', value: touch.id },
        { kind: 'rule', by: 'ref1', value: touch.id },
        { kind: 'role_policy', by: 'ref2', value: touch.id },
      ];
    case 'rule':
      return [{ kind: 'rule', by: 'key', value: touch.id }];
    case 'role':
      return [
        { kind: 'role_policy', by: 'ref1', value: touch.id },
        { kind: 'user_role', by: 'ref2', value: touch.id },
        { kind: 'rule', by: 'ref2', value: touch.id },
      ];
    case 'user':
      return [
        { kind: 'user_role', by: 'ref1', value: touch.id },
        { kind: 'device', by: 'ref1', value: touch.id },
      ];
    case 'device':
      return [{ kind: 'device', by: 'key', value: touch.id }];
    case 'user_role':
      return [{ kind: 'user_role', by: 'key', value: pairKey(touch.user_id, touch.role_id) }];
    case 'role_policy':
      return [{ kind: 'role_policy', by: 'key', value: pairKey(touch.role_id, touch.policy_id) }];
  }
}

/** Scopes of several touches, without repeats ('all' swallows the rest). */
export function scopesOfAll(touches: readonly PolicyTouch[]): ScopeQuery[] {
  if (touches.length === 0 || touches.some((t) => t.kind === 'all')) return scopesOf({ kind: 'all' });
  const seen = new Map<string, ScopeQuery>();
  for (const t of touches) {
    for (const q of scopesOf(t)) seen.set(`${q.kind}|${q.by}|${'value' in q ? q.value : ''}`, q);
  }
  return [...seen.values()];
}

/** Structural JSON with sorted keys: equal meaning, equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

// Live rows → entries. Adapters read their tables and hand the rows to these.

export function settingsEntry(s: ContentSettings): HistoryEntry {
  return { kind: 'settings', key: SETTINGS_KEY, ref1: null, ref2: null, content: canonicalJson(s), info: null };
}

export function policyEntry(p: { id: string; name: string; description: string | null; severity: Severity }): HistoryEntry {
  return {
    kind: 'policy',
    key: p.id,
    ref1: null,
    ref2: null,
    content: canonicalJson({ severity: p.severity }),
    info: canonicalJson({ name: p.name, description: p.description }),
  };
}

export function ruleEntry(r: ContentRule): HistoryEntry {
  const { id, ...decides } = r;
  return { kind: 'rule', key: id, ref1: r.policy_id, ref2: r.role_id, content: canonicalJson(decides), info: null };
}

export function rolePolicyEntry(roleId: string, policyId: string): HistoryEntry {
  return { kind: 'role_policy', key: pairKey(roleId, policyId), ref1: roleId, ref2: policyId, content: '{}', info: null };
}

export function userRoleEntry(userId: string, roleId: string): HistoryEntry {
  return { kind: 'user_role', key: pairKey(userId, roleId), ref1: userId, ref2: roleId, content: '{}', info: null };
}

export function deviceEntry(d: { id: string; user_id: string | null }): HistoryEntry {
  return { kind: 'device', key: d.id, ref1: d.user_id, ref2: null, content: canonicalJson({ user_id: d.user_id }), info: null };
}

/** Every entry of a content (a baseline, or a full re-examination). */
export function entriesOfContent(c: PolicyContent): HistoryEntry[] {
  return [
    settingsEntry(c.settings),
    ...c.policies.map(policyEntry),
    ...c.rules.map(ruleEntry),
    ...c.role_policies.map((l) => rolePolicyEntry(l.role_id, l.policy_id)),
    ...c.user_roles.map((l) => userRoleEntry(l.user_id, l.role_id)),
    ...c.devices.map(deviceEntry),
  ];
}

export type ChangeOp = 'added' | 'removed' | 'changed';

export interface HistoryChange {
  kind: HistoryKind;
  key: string;
  op: ChangeOp;
}

export interface HistoryDiff {
  /** Keys (per kind) whose open entry closes at this version. */
  close: Array<{ kind: HistoryKind; key: string }>;
  /** Entries opening at this version. */
  open: HistoryEntry[];
  changes: HistoryChange[];
}

export const entryId = (e: { kind: HistoryKind; key: string }): string => `${e.kind}\u0000${e.key}`;

/**
 * Keys one side of a scope holds that the other side's scope query did not return (a device that
 * left user U still has its open entry under U, but its live row no longer names U): the adapter
 * fetches these by key before diffing.
 */
export function missingKeys(
  current: ReadonlyMap<string, HistoryEntry>,
  open: ReadonlyMap<string, HistoryEntry>,
): { current: Array<{ kind: HistoryKind; key: string }>; open: Array<{ kind: HistoryKind; key: string }> } {
  const needCurrent = [...open.values()].filter((e) => !current.has(entryId(e))).map(({ kind, key }) => ({ kind, key }));
  const needOpen = [...current.values()].filter((e) => !open.has(entryId(e))).map(({ kind, key }) => ({ kind, key }));
  return { current: needCurrent, open: needOpen };
}

/** Compares live entries with open ones over the same keys (maps keyed by entryId). */
export function diffEntries(current: ReadonlyMap<string, HistoryEntry>, open: ReadonlyMap<string, HistoryEntry>): HistoryDiff {
  const diff: HistoryDiff = { close: [], open: [], changes: [] };
  for (const [id, was] of open) {
    const now = current.get(id);
    if (now === undefined) {
      diff.close.push({ kind: was.kind, key: was.key });
      diff.changes.push({ kind: was.kind, key: was.key, op: 'removed' });
    } else if (now.content !== was.content) {
      diff.close.push({ kind: was.kind, key: was.key });
      diff.open.push(now);
      diff.changes.push({ kind: was.kind, key: was.key, op: 'changed' });
    }
  }
  for (const [id, now] of current) {
    if (open.has(id)) continue;
    diff.open.push(now);
    diff.changes.push({ kind: now.kind, key: now.key, op: 'added' });
  }
  diff.changes.sort((a, b) => (entryId(a) < entryId(b) ? -1 : entryId(a) > entryId(b) ? 1 : 0));
  return diff;
}

export function keyedEntries(entries: Iterable<HistoryEntry>): Map<string, HistoryEntry> {
  const m = new Map<string, HistoryEntry>();
  for (const e of entries) m.set(entryId(e), e);
  return m;
}

/** A version row lists at most this many changes (the count is always exact). */
export const MAX_LISTED_CHANGES = 100;

/** Rebuilds a version's content from the entries valid at it; null without settings (no history). */
export function contentOfEntries(tenantId: string, version: number, entries: Iterable<HistoryEntry>): PolicyContent | null {
  let settings: ContentSettings | null = null;
  const c: PolicyContent = { tenant_id: tenantId, version, settings: null as unknown as ContentSettings, policies: [], rules: [], role_policies: [], user_roles: [], devices: [] };
  for (const e of entries) {
    const body = JSON.parse(e.content) as Record<string, unknown>;
    switch (e.kind) {
      case 'settings':
        settings = body as unknown as ContentSettings;
        break;
      case 'policy': {
        const info = (e.info ? JSON.parse(e.info) : {}) as { name?: string; description?: string | null };
        c.policies.push({ id: e.key, name: info.name ?? e.key, description: info.description ?? null, severity: body['severity'] as Severity } satisfies ContentPolicy);
        break;
      }
      case 'rule':
        c.rules.push({
          id: e.key,
          policy_id: body['policy_id'] as string,
          role_id: (body['role_id'] as string | null) ?? null,
          app: body['app'] as string,
          action: body['action'] as string,
          permission: body['permission'] as Effect,
          remediation: (body['remediation'] as Remediation | null) ?? null,
          escalation: (body['escalation'] as Escalation | null) ?? null,
        });
        break;
      case 'role_policy':
        c.role_policies.push({ role_id: e.ref1!, policy_id: e.ref2! });
        break;
      case 'user_role':
        c.user_roles.push({ user_id: e.ref1!, role_id: e.ref2! });
        break;
      case 'device':
        c.devices.push({ id: e.key, user_id: (body['user_id'] as string | null) ?? null });
        break;
    }
  }
  if (settings === null) return null;
  c.settings = settings;
  return normaliseContent(c);
}

/** Version lists page newest first; the cursor carries the last version listed. */
export function encodeVersionCursor(version: number): string {
  return Buffer.from(`v${version}`, 'utf8').toString('base64url');
}

/** The version a cursor names; VALIDATION_FAILED (cursor) for anything we did not issue. */
export function decodeVersionCursor(cursor: string | null | undefined): number | null {
  if (cursor === null || cursor === undefined) return null;
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const m = /^v([1-9][0-9]{0,14})$/.exec(text);
  if (!m) throw createError('VALIDATION_FAILED', 'cursor: not a cursor of this list', [{ field: 'cursor', message: 'not a cursor of this list' }]);
  return Number(m[1]);
}

/** The list limit every adapter applies (port: 1..1000, default 50). */
export function versionPageLimit(limit: number | undefined): number {
  return Math.min(1000, Math.max(1, Math.floor(limit ?? 50)));
}
