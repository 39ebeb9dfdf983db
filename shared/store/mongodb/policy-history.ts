/**
 * MongoDB side of the policy version history (rules/policy-history.ts): reads the live decision
 * inputs and the open history entries of a scope, and writes the diff as closed and opened
 * intervals plus the version's document, inside the transaction that bumped the version.
 */
import type { ChangeActor } from '../port.js';
import {
  deviceEntry,
  diffEntries,
  entryId,
  MAX_LISTED_CHANGES,
  missingKeys,
  policyEntry,
  rolePolicyEntry,
  ruleEntry,
  scopesOfAll,
  settingsEntry,
  userRoleEntry,
  type HistoryChange,
  type HistoryEntry,
  type HistoryKind,
  type PolicyTouch,
  type ScopeQuery,
} from '../rules/policy-history.js';
import {
  C,
  type DeviceDoc,
  type PlanDoc,
  type PolicyDoc,
  type PolicyHistoryDoc,
  type PolicyVersionDoc,
  type RolePolicyDoc,
  type RuleDoc,
  type TenantDoc,
  type UserRoleDoc,
} from './collections.js';
import { isDuplicateKeyError, type Document, type Filter, type MongoDbLike, type SessionLike } from './db-like.js';
import { compositeKey } from './keys.js';

export interface VersionMeta {
  restored_from?: number;
  actor?: ChangeActor | null;
}

export const historyDocId = (tenantId: string, kind: HistoryKind, key: string, validFrom: number): string =>
  compositeKey(tenantId, kind, key, String(validFrom));
export const versionDocId = (tenantId: string, version: number): string => compositeKey(tenantId, String(version));

/** The live collection of each kind and the field behind its key parts and refs. */
const LIVE = {
  policy: { coll: C.policies, key: ['_id'], ref1: null, ref2: null },
  rule: { coll: C.rules, key: ['_id'], ref1: 'policy_id', ref2: 'role_id' },
  role_policy: { coll: C.rolePolicies, key: ['role_id', 'policy_id'], ref1: 'role_id', ref2: 'policy_id' },
  user_role: { coll: C.userRoles, key: ['user_id', 'role_id'], ref1: 'user_id', ref2: 'role_id' },
  device: { coll: C.devices, key: ['_id'], ref1: 'user_id', ref2: null },
} as const;

function toEntry(kind: Exclude<HistoryKind, 'settings'>, doc: Document): HistoryEntry {
  switch (kind) {
    case 'policy': {
      const p = doc as PolicyDoc;
      return policyEntry({ id: p._id, name: p.name, description: p.description, severity: p.severity });
    }
    case 'rule': {
      const r = doc as RuleDoc;
      return ruleEntry({
        id: r._id,
        policy_id: r.policy_id,
        role_id: r.role_id,
        app: r.app,
        action: r.action,
        permission: r.permission,
        remediation: r.remediation,
        escalation: r.escalation,
      });
    }
    case 'role_policy':
      return rolePolicyEntry((doc as RolePolicyDoc).role_id, (doc as RolePolicyDoc).policy_id);
    case 'user_role':
      return userRoleEntry((doc as UserRoleDoc).user_id, (doc as UserRoleDoc).role_id);
    case 'device':
      return deviceEntry({ id: (doc as DeviceDoc)._id, user_id: (doc as DeviceDoc).user_id });
  }
}

type LiveKind = keyof typeof LIVE;

/** Values per `$in` query. */
const IN_CHUNK = 1000;

/**
 * Key and ref scopes of one kind are read together, with `$in`: a bulk import touches thousands of
 * devices and links, a round trip each otherwise. The rest (settings, whole kinds, a ref the live
 * collection does not have) are read one by one.
 */
function groupScopes(queries: readonly ScopeQuery[]): {
  single: ScopeQuery[];
  grouped: Array<{ kind: LiveKind; by: 'key' | 'ref1' | 'ref2'; values: string[] }>;
} {
  const single: ScopeQuery[] = [];
  const groups = new Map<string, { kind: LiveKind; by: 'key' | 'ref1' | 'ref2'; values: string[] }>();
  for (const q of queries) {
    if (q.kind === 'settings' || q.by === 'all' || (q.by !== 'key' && LIVE[q.kind][q.by] === null)) {
      single.push(q);
      continue;
    }
    const id = `${q.kind}|${q.by}`;
    let g = groups.get(id);
    if (!g) groups.set(id, (g = { kind: q.kind, by: q.by, values: [] }));
    g.values.push(q.value);
  }
  return { single, grouped: [...groups.values()] };
}

const fromDoc = (d: PolicyHistoryDoc): HistoryEntry => ({ kind: d.kind, key: d.key, ref1: d.ref1, ref2: d.ref2, content: d.content, info: d.info });

export class MongoHistory {
  readonly #db: MongoDbLike;

  constructor(db: MongoDbLike) {
    this.#db = db;
  }

  /** Live entries of a scope. */
  async current(session: SessionLike, tenantId: string, q: ScopeQuery): Promise<HistoryEntry[]> {
    if (q.kind === 'settings') {
      const tenant = await this.#db.collection<TenantDoc>(C.tenants).findOne({ _id: tenantId }, { session });
      if (!tenant) return [];
      const plan = await this.#db.collection<PlanDoc>(C.plans).findOne({ _id: tenant.plan_id }, { session });
      if (!plan) return [];
      return [
        settingsEntry({
          default_effect: tenant.default_effect,
          plan_id: plan._id,
          auto_remediation: plan.auto_remediation,
          max_devices: plan.max_devices,
          max_events_per_s: plan.max_events_per_s,
          retention_days: plan.retention_days,
        }),
      ];
    }
    const live = LIVE[q.kind];
    const filter: Document = { tenant_id: tenantId };
    if (q.by === 'key') {
      const parts = live.key.length === 2 ? q.value.split('\u0000') : [q.value];
      if (parts.length !== live.key.length) return [];
      live.key.forEach((field, i) => (filter[field] = parts[i]));
    } else if (q.by === 'ref1' || q.by === 'ref2') {
      const field = q.by === 'ref1' ? live.ref1 : live.ref2;
      if (field === null) return [];
      filter[field] = q.value;
    }
    const docs = await this.#db.collection<Document>(live.coll).find(filter as Filter<Document>, { session }).toArray();
    return docs.map((d) => toEntry(q.kind as Exclude<HistoryKind, 'settings'>, d));
  }

  /** Live entries of many key or ref scopes of one kind, in one query (see groupScopes). */
  async #currentIn(session: SessionLike, tenantId: string, kind: LiveKind, by: 'key' | 'ref1' | 'ref2', values: string[]): Promise<HistoryEntry[]> {
    const live = LIVE[kind];
    const find = async (field: string, among: string[]) =>
      (await this.#db.collection<Document>(live.coll).find({ tenant_id: tenantId, [field]: { $in: among } } as Filter<Document>, { session }).toArray()).map((d) => toEntry(kind, d));
    if (by !== 'key') return find(live[by]!, values);
    if (live.key.length === 1) return find(live.key[0], values);
    // A pair key: select by its first part, keep the pairs asked for.
    const wanted = new Set(values);
    const entries = await find(live.key[0], [...new Set(values.map((v) => v.split('\u0000')[0]!))]);
    return entries.filter((e) => wanted.has(e.key));
  }

  /** Open history entries of a scope. */
  async open(session: SessionLike, tenantId: string, q: ScopeQuery): Promise<HistoryEntry[]> {
    const filter: Document = { tenant_id: tenantId, kind: q.kind, valid_to: null };
    if (q.by !== 'all') filter[q.by] = q.value;
    const docs = await this.#db.collection<PolicyHistoryDoc>(C.policyHistory).find(filter as Filter<PolicyHistoryDoc>, { session }).toArray();
    return docs.map(fromDoc);
  }

  /** Records `version`: the touched scopes' changes as closed and opened intervals, and its document. */
  async record(session: SessionLike, tenantId: string, version: number, touches: readonly PolicyTouch[], now: number, meta: VersionMeta = {}): Promise<void> {
    const current = new Map<string, HistoryEntry>();
    const open = new Map<string, HistoryEntry>();
    // One after another: operations of one session must not run concurrently in a transaction.
    const { single, grouped } = groupScopes(scopesOfAll(touches));
    for (const q of single) {
      for (const e of await this.current(session, tenantId, q)) current.set(entryId(e), e);
      for (const e of await this.open(session, tenantId, q)) open.set(entryId(e), e);
    }
    for (const g of grouped) {
      for (let i = 0; i < g.values.length; i += IN_CHUNK) {
        const values = g.values.slice(i, i + IN_CHUNK);
        for (const e of await this.#currentIn(session, tenantId, g.kind, g.by, values)) current.set(entryId(e), e);
        const docs = await this.#db
          .collection<PolicyHistoryDoc>(C.policyHistory)
          .find({ tenant_id: tenantId, kind: g.kind, valid_to: null, [g.by]: { $in: values } } as Filter<PolicyHistoryDoc>, { session })
          .toArray();
        for (const d of docs) open.set(entryId(d), fromDoc(d));
      }
    }
    const missing = missingKeys(current, open);
    for (const k of missing.current) for (const e of await this.current(session, tenantId, { kind: k.kind, by: 'key', value: k.key })) current.set(entryId(e), e);
    for (const k of missing.open) for (const e of await this.open(session, tenantId, { kind: k.kind, by: 'key', value: k.key })) open.set(entryId(e), e);
    const diff = diffEntries(current, open);
    const history = this.#db.collection<PolicyHistoryDoc>(C.policyHistory);
    for (const c of diff.close) {
      await history.updateOne({ tenant_id: tenantId, kind: c.kind, key: c.key, valid_to: null }, { $set: { valid_to: version } }, { session });
    }
    if (diff.open.length > 0) {
      const docs: PolicyHistoryDoc[] = diff.open.map((e) => ({
        _id: historyDocId(tenantId, e.kind, e.key, version),
        tenant_id: tenantId,
        kind: e.kind,
        key: e.key,
        valid_from: version,
        valid_to: null,
        ref1: e.ref1,
        ref2: e.ref2,
        content: e.content,
        info: e.info,
      }));
      await history.insertMany(docs, { session });
    }
    await this.versionRow(session, tenantId, version, now, diff.changes.length, diff.changes.slice(0, MAX_LISTED_CHANGES), meta);
  }

  async versionRow(session: SessionLike, tenantId: string, version: number, now: number, count: number, changes: HistoryChange[], meta: VersionMeta): Promise<void> {
    const doc: PolicyVersionDoc = {
      _id: versionDocId(tenantId, version),
      tenant_id: tenantId,
      version,
      created_at: now,
      change_count: count,
      changes,
      restored_from: meta.restored_from ?? null,
      actor: meta.actor ?? null,
    };
    await this.#db.collection<PolicyVersionDoc>(C.policyVersions).insertOne(doc, { session });
  }

  /** Starts the tenant's history at its current version (tenant creation, or the upgrade). */
  async baseline(session: SessionLike, tenantId: string, now: number): Promise<void> {
    const tenant = await this.#db.collection<TenantDoc>(C.tenants).findOne({ _id: tenantId }, { session });
    if (!tenant) return;
    await this.record(session, tenantId, tenant.policy_version, [{ kind: 'all' }], now);
  }
}

/**
 * Tenants created before the history existed start theirs at their current version, once. Runs
 * at every start, like the schema steps (one indexed lookup per tenant when all have a history);
 * a process racing another to start the same history loses on the version's unique key.
 */
export async function startMissingHistories(db: MongoDbLike, history: MongoHistory, now: () => number): Promise<number> {
  const versions = db.collection<PolicyVersionDoc>(C.policyVersions);
  const tenants = await db.collection<TenantDoc>(C.tenants).find({}, { sort: { _id: 1 } }).toArray();
  let started = 0;
  for (const t of tenants) {
    if (await versions.findOne({ tenant_id: t._id })) continue;
    const session = db.client.startSession();
    try {
      await session.withTransaction(async (s) => {
        if (await versions.findOne({ tenant_id: t._id }, { session: s })) return;
        await history.baseline(s, t._id, now());
        started++;
      });
    } catch (err) {
      if (!isDuplicateKeyError(err)) throw err;
    } finally {
      await session.endSession();
    }
  }
  return started;
}
