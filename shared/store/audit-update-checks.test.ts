/**
 * Audit (data integrity): `rules.update(…, check)` checks the rule as the update leaves it, inside
 * the update's transaction, in both adapters. The API's "only deny rules remediate" was checked
 * against a copy of the rule read before the update, so two PATCHes racing (one adding a
 * remediation, one making the rule allow) each passed and together stored an allow rule that
 * remediates. Here the concurrent writer's change is committed between the caller's read and its
 * update: the check must see it, refuse, and leave nothing behind (no write, no version).
 *
 * The same for console accounts (`consoleUsers.update/delete(…, check)`): whether an admin may
 * manage an account was decided on a copy read earlier, so an account promoted to owner meanwhile
 * could still be disabled or deleted by an admin.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ConsoleUser, PolicyRule } from '../domain.js';
import { createError, isEdgeplaneError } from '../errors.js';
import { bothAdapters } from './contract/adapters.js';
import type { Store } from './port.js';

const onlyDenyRemediates = (rule: PolicyRule): void => {
  if (rule.permission !== 'deny' && (rule.remediation !== null || rule.escalation !== null)) {
    throw createError('VALIDATION_FAILED', 'body.remediation: only deny rules remediate', [{ field: 'body.remediation', message: 'only deny rules remediate' }]);
  }
};

const adapters = bothAdapters('audit-rule');

describe.each(adapters)('rules.update with a check ($name)', ({ open }) => {
  let close: (() => Promise<void>) | null = null;
  afterEach(async () => {
    await close?.();
    close = null;
  });

  async function seed(): Promise<{ store: Store; tenantId: string; rule: PolicyRule }> {
    const opened = await open();
    close = opened.close;
    const { store } = opened;
    const tenant = await store.tenants.create({ name: 'Acme' });
    const policy = await store.policies.create(tenant.id, { name: 'No uploads', severity: 'high' });
    const rule = await store.rules.create(tenant.id, { policy_id: policy.id, app: '*', action: '*', permission: 'deny' });
    return { store, tenantId: tenant.id, rule };
  }

  it('refuses when the row as updated fails the check, leaving the rule and the version as they were', async () => {
    const { store, tenantId, rule } = await seed();
    // What the caller read: a deny rule without a remediation, so making it allow looked fine.
    const readBefore = await store.rules.get(tenantId, rule.id);
    expect(readBefore).toMatchObject({ permission: 'deny', remediation: null });
    // Meanwhile another writer adds a remediation and commits.
    const remediated = await store.rules.update(tenantId, rule.id, { remediation: { type: 'block_app', duration_s: 600 } }, onlyDenyRemediates);
    expect(remediated).toMatchObject({ permission: 'deny', remediation: { type: 'block_app', duration_s: 600 } });
    const version = (await store.tenants.get(tenantId))!.policy_version;
    const versionsBefore = (await store.policyVersions.list(tenantId)).items.length;

    const err = await store.rules.update(tenantId, rule.id, { permission: 'allow' }, onlyDenyRemediates).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isEdgeplaneError(err) && err.code).toBe('VALIDATION_FAILED');

    expect(await store.rules.get(tenantId, rule.id)).toEqual(remediated);
    expect((await store.tenants.get(tenantId))!.policy_version).toBe(version);
    expect((await store.policyVersions.list(tenantId)).items).toHaveLength(versionsBefore);
    expect((await store.policySnapshot(tenantId))!.rules).toEqual([remediated]);
  });

  it('applies the update when the row passes, and the check sees the patched row', async () => {
    const { store, tenantId, rule } = await seed();
    const seen: PolicyRule[] = [];
    const after = await store.rules.update(tenantId, rule.id, { permission: 'allow', app: 'slack' }, (r) => {
      seen.push(structuredClone(r));
      onlyDenyRemediates(r);
    });
    expect(after).toMatchObject({ permission: 'allow', app: 'slack', remediation: null });
    expect(seen).toEqual([after]);
    expect(await store.rules.get(tenantId, rule.id)).toEqual(after);
    // An unknown rule never reaches the check.
    expect(await store.rules.update(tenantId, 'no-such-rule', { permission: 'deny' }, () => seen.push(rule))).toBeNull();
    expect(seen).toHaveLength(1);
  });
});

describe.each(adapters)('consoleUsers.update/delete with a check ($name)', ({ open }) => {
  let close: (() => Promise<void>) | null = null;
  afterEach(async () => {
    await close?.();
    close = null;
  });

  /** What an admin may manage: never an owner (api/routes/console-users.ts). */
  const notAnOwner = (current: ConsoleUser): void => {
    if (current.console_role === 'owner') throw createError('FORBIDDEN', 'cannot manage owner accounts');
  };

  it('decides on the account as it is in the transaction, refusing without writing', async () => {
    const opened = await open();
    close = opened.close;
    const { store } = opened;
    const tenant = await store.tenants.create({ name: 'Acme' });
    const t = tenant.id;
    await store.consoleUsers.create({ tenant_id: t, email: 'first@acme.test', console_role: 'owner', password_hash: 'h' });
    const target = await store.consoleUsers.create({ tenant_id: t, email: 'target@acme.test', console_role: 'admin', password_hash: 'h' });
    // The caller read an admin; meanwhile the account became an owner.
    const promoted = (await store.consoleUsers.update(t, target.id, { console_role: 'owner' }))!;
    expect(promoted.console_role).toBe('owner');

    const refusal = (p: Promise<unknown>) =>
      p.then(
        () => null,
        (e: unknown) => (isEdgeplaneError(e) ? e.code : e),
      );
    expect(await refusal(store.consoleUsers.update(t, target.id, { disabled: true }, notAnOwner))).toBe('FORBIDDEN');
    expect(await refusal(store.consoleUsers.delete(t, target.id, notAnOwner))).toBe('FORBIDDEN');
    expect(await store.consoleUsers.get(target.id)).toEqual(promoted);

    // A passing check lets the change through, and sees the account before it.
    const seen: ConsoleUser[] = [];
    const demoted = await store.consoleUsers.update(t, target.id, { console_role: 'analyst' }, (c) => seen.push(structuredClone(c)));
    expect(seen).toEqual([promoted]);
    expect(demoted).toMatchObject({ console_role: 'analyst' });
    expect(await store.consoleUsers.delete(t, target.id, notAnOwner)).toEqual({ unassigned: [] });
    expect(await store.consoleUsers.get(target.id)).toBeNull();
  });
});
