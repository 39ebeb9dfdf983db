/**
 * Policy versions of a tenant (port: policyVersions): the version documents, any version's
 * content rebuilt from the interval history, restore, and what the history costs.
 */
import { contentFromSnapshot, type PolicyContent } from '../../policy/content.js';
import type { PolicySnapshot, PolicyVersionInfo, Store } from '../port.js';
import { contentOfEntries, decodeVersionCursor, encodeVersionCursor, versionPageLimit } from '../rules/policy-history.js';
import { conflict } from '../rules/errors.js';
import { nameKey } from '../rules/names.js';
import { isEmptyPlan, planRestore, restoredNameTaken, type RestorePlan } from '../rules/policy-restore.js';
import {
  C,
  type DeviceDoc,
  type PolicyDoc,
  type PolicyHistoryDoc,
  type PolicyVersionDoc,
  type RoleDoc,
  type RolePolicyDoc,
  type RuleDoc,
  type TenantDoc,
  type UserDoc,
  type UserRoleDoc,
} from './collections.js';
import { insertOrConflict, type MongoContext } from './context.js';
import type { Document, Filter, SessionLike } from './db-like.js';
import { compositeKey } from './keys.js';
import { versionDocId } from './policy-history.js';

const toInfo = (d: PolicyVersionDoc): PolicyVersionInfo => ({
  version: d.version,
  created_at: d.created_at,
  change_count: d.change_count,
  changes: d.changes,
  restored_from: d.restored_from,
  actor: d.actor,
});

/** Approximate payload bytes of one entry (keys, references and JSON; document overhead excluded). */
const entryBytes = (d: PolicyHistoryDoc): number =>
  d.key.length + d.content.length + (d.info?.length ?? 0) + (d.ref1?.length ?? 0) + (d.ref2?.length ?? 0) + 16;

export function createPolicyVersionsRepo(
  ctx: MongoContext,
  snapshot: (tenantId: string, session?: SessionLike) => Promise<PolicySnapshot | null>,
): Store['policyVersions'] {
  const versions = ctx.coll<PolicyVersionDoc>(C.policyVersions);
  const history = ctx.coll<PolicyHistoryDoc>(C.policyHistory);

  const contentAt = async (tenantId: string, version: number, session?: SessionLike): Promise<PolicyContent | null> => {
    if (!(await versions.findOne({ _id: versionDocId(tenantId, version), tenant_id: tenantId }, { session }))) return null;
    const docs = await history
      .find({ tenant_id: tenantId, valid_from: { $lte: version }, $or: [{ valid_to: null }, { valid_to: { $gt: version } }] } as Filter<PolicyHistoryDoc>, { session })
      .toArray();
    return contentOfEntries(tenantId, version, docs);
  };

  return {
    async list(tenantId, opts) {
      const limit = versionPageLimit(opts?.limit);
      const after = decodeVersionCursor(opts?.cursor);
      const filter: Document = { tenant_id: tenantId };
      if (after !== null) filter['version'] = { $lt: after };
      const docs = await versions.find(filter as Filter<PolicyVersionDoc>, { sort: { version: -1 }, limit: limit + 1 }).toArray();
      const items = docs.slice(0, limit).map(toInfo);
      return { items, next_cursor: docs.length > limit ? encodeVersionCursor(items[items.length - 1]!.version) : null };
    },
    async get(tenantId, version) {
      const doc = await versions.findOne({ _id: versionDocId(tenantId, version), tenant_id: tenantId });
      return doc ? toInfo(doc) : null;
    },
    async content(tenantId, version) {
      return ctx.read((session) => contentAt(tenantId, version, session));
    },
    async restore(tenantId, version, actor) {
      const outcome = await ctx.write(async ({ session, bumpPolicy }) => {
        const target = await contentAt(tenantId, version, session);
        const snap = await snapshot(tenantId, session);
        if (target === null || snap === null) return null;
        const current = contentFromSnapshot(snap);
        const ids = async (name: typeof C.users | typeof C.roles) =>
          new Set((await ctx.coll<UserDoc | RoleDoc>(name).find({ tenant_id: tenantId }, { session }).toArray()).map((d) => d._id));
        const plan = planRestore(current, target, { users: await ids(C.users), roles: await ids(C.roles) });
        if (isEmptyPlan(plan)) return { version: current.version, created: false, plan };
        await applyRestore(ctx, session, tenantId, plan);
        await bumpPolicy(tenantId, { kind: 'all' }, { restored_from: version, actor });
        return { version: current.version + 1, created: true, plan };
      });
      if (outcome === null) return null;
      const doc = await versions.findOne({ _id: versionDocId(tenantId, outcome.version), tenant_id: tenantId });
      if (!doc) return null;
      return { version: toInfo(doc), created: outcome.created, not_restored: outcome.plan.not_restored };
    },
    async storage(tenantId) {
      const docs = await versions.find({ tenant_id: tenantId }, { sort: { version: 1 } }).toArray();
      const entries = await history.find({ tenant_id: tenantId }).toArray();
      return {
        versions: docs.length,
        first_version: docs[0]?.version ?? null,
        entries: entries.length,
        bytes: entries.reduce((sum, d) => sum + entryBytes(d), 0),
      };
    },
  };
}

/** Applies a restore plan in the order rules/policy-restore.ts prescribes. */
async function applyRestore(ctx: MongoContext, session: SessionLike, t: string, plan: RestorePlan): Promise<void> {
  const now = ctx.now();
  const rules = ctx.coll<RuleDoc>(C.rules);
  const rp = ctx.coll<RolePolicyDoc>(C.rolePolicies);
  const ur = ctx.coll<UserRoleDoc>(C.userRoles);
  const policies = ctx.coll<PolicyDoc>(C.policies);
  const o = { session };
  for (const id of plan.rules.delete) await rules.deleteOne({ _id: id, tenant_id: t }, o);
  for (const l of plan.role_policies.remove) await rp.deleteOne({ _id: compositeKey(t, l.role_id, l.policy_id), tenant_id: t }, o);
  for (const l of plan.user_roles.remove) await ur.deleteOne({ _id: compositeKey(t, l.user_id, l.role_id), tenant_id: t }, o);
  for (const id of plan.policies.delete) {
    await rules.deleteMany({ tenant_id: t, policy_id: id }, o);
    await rp.deleteMany({ tenant_id: t, policy_id: id }, o);
    await policies.deleteOne({ _id: id, tenant_id: t }, o);
  }
  // With its natural key, as policies.create writes it: unique per tenant and found by name.
  for (const p of plan.policies.create) {
    const doc: PolicyDoc = { _id: p.id, id: p.id, tenant_id: t, name: p.name, name_key: nameKey(p.name), description: p.description, severity: p.severity, created_at: now, updated_at: now };
    await insertOrConflict(() => policies.insertOne(doc, o), () => conflict('name', restoredNameTaken(p)));
  }
  for (const p of plan.policies.update) await policies.updateOne({ _id: p.id, tenant_id: t }, { $set: { severity: p.severity, updated_at: now } }, o);
  for (const r of plan.rules.create) await rules.insertOne({ _id: r.id, ...r, tenant_id: t, created_at: now, updated_at: now }, o);
  for (const r of plan.rules.update) {
    const { id, policy_id: _policy, ...fields } = r;
    await rules.updateOne({ _id: id, tenant_id: t }, { $set: { ...fields, updated_at: now } }, o);
  }
  for (const l of plan.role_policies.add) {
    await rp.insertOne({ _id: compositeKey(t, l.role_id, l.policy_id), tenant_id: t, role_id: l.role_id, policy_id: l.policy_id, created_at: now }, o);
  }
  for (const l of plan.user_roles.add) {
    await ur.insertOne({ _id: compositeKey(t, l.user_id, l.role_id), tenant_id: t, user_id: l.user_id, role_id: l.role_id, created_at: now }, o);
  }
  for (const d of plan.device_owners) await ctx.coll<DeviceDoc>(C.devices).updateOne({ _id: d.id, tenant_id: t }, { $set: { user_id: d.user_id, updated_at: now } }, o);
  if (plan.default_effect !== null) await ctx.coll<TenantDoc>(C.tenants).updateOne({ _id: t }, { $set: { default_effect: plan.default_effect, updated_at: now } }, o);
}
