/**
 * Contract: every policy version's content is kept (rules/policy-history.ts), listed, diffed by
 * its change list, restored as a new version; what the history costs. The central property: after
 * any sequence of decision-changing writes, each version's stored content equals the snapshot
 * taken right after the write that made it.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { contentFromSnapshot, type PolicyContent } from '../../policy/content.js';
import type { Store } from '../port.js';
import { must, seedWorld, type ContractState, type PolicyChange } from './harness.js';

async function live(store: Store, tenantId: string): Promise<PolicyContent> {
  return contentFromSnapshot(must(await store.policySnapshot(tenantId), 'snapshot'));
}

/**
 * Policy names and descriptions are display data, not decision inputs: renaming does not make a
 * version, so a version shows the name recorded with its policy's last decision change.
 */
function decisionInputs(c: PolicyContent | null): unknown {
  return c === null ? null : { ...c, policies: c.policies.map(({ id, severity }) => ({ id, severity })) };
}

/** Deterministic PRNG (mulberry32): a failing sequence reproduces. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function describePolicyVersionContract(state: ContractState): void {
  let store: Store;
  let changes: PolicyChange[];
  beforeEach(() => {
    store = state.store;
    changes = state.changes;
  });

  describe('policy versions', () => {
    it("a new tenant's history starts at its first version", async () => {
      const t = await store.tenants.create({ name: 'fresh', default_effect: 'deny' });
      expect(await store.policyVersions.content(t.id, t.policy_version)).toEqual(await live(store, t.id));
      const storage = await store.policyVersions.storage(t.id);
      expect(storage).toMatchObject({ versions: 1, first_version: t.policy_version, entries: 1 });
      const page = await store.policyVersions.list(t.id);
      expect(page.items.map((v) => v.version)).toEqual([t.policy_version]);
      expect(page.items[0]!.changes).toEqual([{ kind: 'settings', key: '', op: 'added' }]);
    });

    it("every version's content is the snapshot right after the write that made it (random writes)", async () => {
      const rand = prng(12);
      const pick = <T>(xs: readonly T[]): T | undefined => (xs.length === 0 ? undefined : xs[Math.floor(rand() * xs.length)]);
      const t = await store.tenants.create({ name: 'history' });
      const other = await seedWorld(store, 'bystander');
      const expected = new Map<number, PolicyContent>([[t.policy_version, await live(store, t.id)]]);
      const users: string[] = [];
      const roles: string[] = [];
      const policies: string[] = [];
      const rules: string[] = [];
      const devices: string[] = [];
      const roleNames = new Map<string, string>();
      const emails: string[] = [];
      let serial = 0;
      const ops: Array<() => Promise<unknown>> = [
        async () => users.push((await store.users.create(t.id, { name: `u${serial++}` })).id),
        async () => {
          const role = await store.roles.create(t.id, { name: `r${serial++}` });
          roles.push(role.id);
          roleNames.set(role.id, role.name);
        },
        async () => policies.push((await store.policies.create(t.id, { name: `p${serial++}`, severity: pick(['low', 'high'] as const)! })).id),
        async () => {
          const policy = pick(policies);
          if (!policy) return;
          const scoped = rand() < 0.3 ? pick(roles) : undefined;
          const rule = await store.rules.create(t.id, {
            policy_id: policy,
            role_id: scoped ?? null,
            app: pick(['slack', 'dropbox', '*'])!,
            action: pick(['upload', '*'])!,
            permission: rand() < 0.5 ? 'deny' : 'allow',
            remediation: rand() < 0.3 ? { type: 'block_app', duration_s: 60 } : null,
          });
          rules.push(rule.id);
        },
        async () => {
          const id = pick(rules);
          if (id) await store.rules.update(t.id, id, { permission: rand() < 0.5 ? 'deny' : 'allow', app: pick(['zoom', 'slack'])! });
        },
        async () => {
          const id = pick(rules);
          if (id && (await store.rules.delete(t.id, id))) rules.splice(rules.indexOf(id), 1);
        },
        async () => {
          const [u, r] = [pick(users), pick(roles)];
          if (u && r) await store.userRoles.assign(t.id, u, r);
        },
        async () => {
          const [u, r] = [pick(users), pick(roles)];
          if (u && r) await store.userRoles.unassign(t.id, u, r);
        },
        async () => {
          const [r, p] = [pick(roles), pick(policies)];
          if (r && p) await store.rolePolicies.assign(t.id, r, p);
        },
        async () => {
          const [r, p] = [pick(roles), pick(policies)];
          if (r && p) await store.rolePolicies.unassign(t.id, r, p);
        },
        async () => devices.push((await store.devices.create(t.id, { id: `hist-dev-${serial++}`, name: 'd', user_id: pick(users) ?? null })).id),
        async () => {
          const d = pick(devices);
          if (d) await store.devices.update(t.id, d, { user_id: rand() < 0.3 ? null : (pick(users) ?? null) });
        },
        async () => {
          const d = pick(devices);
          if (d && (await store.devices.delete(t.id, d))) devices.splice(devices.indexOf(d), 1);
        },
        // Bulk onboarding: a new or earlier imported user with roles by name, and a new device or
        // an existing one that changes owner (the import names what it touched, not the tenant).
        async () => {
          const email = rand() < 0.4 ? pick(emails) : undefined;
          const roleIds = [...new Set([pick(roles), pick(roles)].filter((r): r is string => r !== undefined))];
          const row = {
            user_email: email ?? `imported${serial++}@history.test`,
            user_name: 'imported',
            roles: roleIds.map((id) => roleNames.get(id)!),
            device_id: (rand() < 0.5 ? pick(devices) : undefined) ?? `hist-imp-${serial++}`,
            device_name: 'd',
          };
          const result = await store.directory.import(t.id, [row]);
          for (const r of result.rows) {
            if (r.user === 'created' && r.user_id !== null) {
              users.push(r.user_id);
              emails.push(row.user_email);
            }
            if (r.device === 'created' && r.device_id !== null) devices.push(r.device_id);
          }
        },
        async () => {
          const p = pick(policies);
          if (p) await store.policies.update(t.id, p, { severity: pick(['low', 'medium', 'critical'] as const)!, name: `renamed${serial++}` });
        },
        async () => store.tenants.update(t.id, { default_effect: rand() < 0.5 ? 'deny' : 'allow' }),
        async () => store.tenants.update(t.id, { plan_id: rand() < 0.5 ? 'premium' : 'free' }),
        // Cascading deletes are rarer, so the graph grows enough to matter.
        async () => {
          if (rand() > 0.3) return;
          const u = pick(users);
          if (u && (await store.users.delete(t.id, u))) users.splice(users.indexOf(u), 1);
        },
        async () => {
          if (rand() > 0.3) return;
          const r = pick(roles);
          if (r && (await store.roles.delete(t.id, r))) roles.splice(roles.indexOf(r), 1);
        },
        async () => {
          if (rand() > 0.3) return;
          const p = pick(policies);
          if (p && (await store.policies.delete(t.id, p))) policies.splice(policies.indexOf(p), 1);
        },
      ];
      for (let step = 0; step < 300; step++) {
        const before = must(await store.tenants.get(t.id)).policy_version;
        await pick(ops)!();
        const after = must(await store.tenants.get(t.id)).policy_version;
        if (after !== before) {
          expect(after, `step ${step}`).toBe(before + 1);
          expected.set(after, await live(store, t.id));
        }
      }
      expect(expected.size).toBeGreaterThan(60);
      for (const [version, content] of expected) {
        expect(decisionInputs(await store.policyVersions.content(t.id, version)), `version ${version}`).toEqual(decisionInputs(content));
      }
      // Every version has its row, newest first, walked by cursor.
      const listed: number[] = [];
      let cursor: string | null = null;
      do {
        const page: Awaited<ReturnType<Store['policyVersions']['list']>> = await store.policyVersions.list(t.id, { limit: 7, cursor });
        listed.push(...page.items.map((v) => v.version));
        cursor = page.next_cursor;
      } while (cursor !== null);
      expect(listed).toEqual([...expected.keys()].sort((a, b) => b - a));
      // The bystander's history is its own.
      const otherVersion = must(await store.tenants.get(other.tenant.id)).policy_version;
      expect(await store.policyVersions.content(other.tenant.id, otherVersion)).toEqual(await live(store, other.tenant.id));
    });

    it('cascading deletes are captured: a user’s links and devices, a role’s links and scoped rules, a policy’s rules and links', async () => {
      const w = await seedWorld(store, 'a');
      const t = w.tenant.id;
      const scoped = await store.rules.create(t, { policy_id: w.policy.id, role_id: w.role.id, app: 'zoom', action: '*', permission: 'deny' });
      const second = await store.devices.create(t, { id: `second-${w.device.id}`, name: 'tablet', user_id: w.user.id });
      const otherRole = await store.roles.create(t, { name: 'other' });
      await store.rolePolicies.assign(t, otherRole.id, w.policy.id);
      await store.userRoles.assign(t, w.user.id, otherRole.id);
      const check = async (what: string) => {
        const v = must(await store.tenants.get(t)).policy_version;
        expect(decisionInputs(await store.policyVersions.content(t, v)), what).toEqual(decisionInputs(await live(store, t)));
      };
      await check('before');
      await store.roles.delete(t, w.role.id);
      await check('role deleted: its links and its scoped rule go');
      expect((await live(store, t)).rules.map((r) => r.id)).not.toContain(scoped.id);
      await store.users.delete(t, w.user.id);
      await check('user deleted: links go, devices lose their owner');
      expect((await live(store, t)).devices.filter((d) => d.id === second.id)).toEqual([{ id: second.id, user_id: null }]);
      await store.policies.delete(t, w.policy.id);
      await check('policy deleted: its rules and links go');
      expect((await live(store, t)).rules).toEqual([]);
    });

    it('a version lists what it changed; unknown versions and other tenants have none', async () => {
      const w = await seedWorld(store, 'a');
      const b = await seedWorld(store, 'b');
      const v = must(await store.tenants.get(w.tenant.id)).policy_version;
      await store.rules.update(w.tenant.id, w.rule.id, { permission: 'allow' });
      const info = must(await store.policyVersions.get(w.tenant.id, v + 1));
      expect(info).toMatchObject({ version: v + 1, change_count: 1, changes: [{ kind: 'rule', key: w.rule.id, op: 'changed' }], restored_from: null });
      await store.roles.delete(w.tenant.id, w.role.id);
      const cascade = must(await store.policyVersions.get(w.tenant.id, v + 2));
      expect(cascade.changes.map((c) => `${c.kind}:${c.op}`).sort()).toEqual(['role_policy:removed', 'user_role:removed']);

      expect(await store.policyVersions.get(w.tenant.id, v + 3)).toBeNull();
      expect(await store.policyVersions.content(w.tenant.id, v + 3)).toBeNull();
      expect(await store.policyVersions.content(w.tenant.id, 0)).toBeNull();
      // Tenant B has a version v+1 of its own? Not necessarily; whatever B asks, it never sees A's.
      const bVersion = must(await store.tenants.get(b.tenant.id)).policy_version;
      const bContent = must(await store.policyVersions.content(b.tenant.id, bVersion));
      expect(bContent.tenant_id).toBe(b.tenant.id);
      expect(JSON.stringify(bContent)).not.toContain(w.rule.id);
      expect(await store.policyVersions.content('no-such-tenant', 1)).toBeNull();
      expect((await store.policyVersions.list('no-such-tenant')).items).toEqual([]);
    });

    it('restoring version n makes n’s content current as a new, announced version', async () => {
      const w = await seedWorld(store, 'a');
      const n = must(await store.tenants.get(w.tenant.id)).policy_version;
      const atN = await live(store, w.tenant.id);
      // Change everything a restore covers.
      await store.rules.update(w.tenant.id, w.rule.id, { permission: 'allow', app: 'zoom' });
      const extra = await store.policies.create(w.tenant.id, { name: 'later', severity: 'low' });
      await store.rules.create(w.tenant.id, { policy_id: extra.id, app: '*', action: '*', permission: 'deny' });
      await store.rolePolicies.unassign(w.tenant.id, w.role.id, w.policy.id);
      await store.rolePolicies.assign(w.tenant.id, w.role.id, extra.id);
      await store.policies.delete(w.tenant.id, w.policy.id);
      const otherUser = await store.users.create(w.tenant.id, { name: 'other' });
      await store.devices.update(w.tenant.id, w.device.id, { user_id: otherUser.id });
      await store.tenants.update(w.tenant.id, { default_effect: 'deny' });
      const later = await store.devices.create(w.tenant.id, { id: `later-${w.device.id}`, name: 'later' });
      const before = must(await store.tenants.get(w.tenant.id)).policy_version;
      const heard = changes.length;

      const actor = { kind: 'console_user' as const, id: 'cu-1', label: 'owner@a.test' };
      const result = must(await store.policyVersions.restore(w.tenant.id, n, actor));
      expect(result.created).toBe(true);
      expect(result.version).toMatchObject({ version: before + 1, restored_from: n, actor });
      expect(result.not_restored).toEqual([{ kind: 'device', id: later.id, reason: 'registered after that version: kept' }]);
      expect(changes.slice(heard)).toEqual([{ tenantId: w.tenant.id, version: before + 1, scope: 'inventory' }]);
      const now = await live(store, w.tenant.id);
      expect({ ...now, version: n, devices: now.devices.filter((d) => d.id !== later.id) }).toEqual(atN);
      // The deleted policy came back with its id, name and rules.
      expect(must(await store.policies.get(w.tenant.id, w.policy.id))).toMatchObject({ name: w.policy.name, severity: 'high' });
      expect(must(await store.rules.get(w.tenant.id, w.rule.id))).toMatchObject({ app: 'slack', action: '*', permission: 'deny' });
      // And the restore is itself a version with its content.
      expect(await store.policyVersions.content(w.tenant.id, before + 1)).toEqual(now);

      // Restoring what is already current creates nothing.
      const again = must(await store.policyVersions.restore(w.tenant.id, before + 1, actor));
      expect(again.created).toBe(false);
      expect(again.version.version).toBe(before + 1);
      expect(must(await store.tenants.get(w.tenant.id)).policy_version).toBe(before + 1);
    });

    it('a restore skips what refers to deleted users and roles, and says so', async () => {
      const w = await seedWorld(store, 'a');
      const n = must(await store.tenants.get(w.tenant.id)).policy_version;
      await store.userRoles.unassign(w.tenant.id, w.user.id, w.role.id);
      await store.users.delete(w.tenant.id, w.user.id);
      const result = must(await store.policyVersions.restore(w.tenant.id, n, null));
      expect(result.not_restored.map((x) => `${x.kind}:${x.reason}`).sort()).toEqual([
        `device:its owner at that version, user ${w.user.id}, no longer exists`,
        `user_role:user ${w.user.id} no longer exists`,
      ]);
      expect(result.created).toBe(false);
      expect(await store.policyVersions.restore(w.tenant.id, n + 999, null)).toBeNull();
      const b = await seedWorld(store, 'b');
      // Another tenant's version numbers restore that tenant's own history only.
      expect(await store.policyVersions.restore(b.tenant.id, 0, null)).toBeNull();
    });

    it('a version costs what it changed: registering one device adds one entry', async () => {
      const w = await seedWorld(store, 'a');
      const before = await store.policyVersions.storage(w.tenant.id);
      for (let i = 0; i < 5; i++) await store.devices.create(w.tenant.id, { id: `cost-${i}-${w.device.id}`, name: 'd' });
      const after = await store.policyVersions.storage(w.tenant.id);
      expect(after.entries - before.entries).toBe(5);
      expect(after.versions - before.versions).toBe(5);
      expect(after.bytes).toBeGreaterThan(before.bytes);
      expect((after.bytes - before.bytes) / 5).toBeLessThan(200);
    });

    it('deleting a tenant deletes its history', async () => {
      const w = await seedWorld(store, 'a');
      const v = must(await store.tenants.get(w.tenant.id)).policy_version;
      expect(await store.policyVersions.content(w.tenant.id, v)).not.toBeNull();
      expect(await store.tenants.delete(w.tenant.id)).toBe(true);
      expect(await store.policyVersions.content(w.tenant.id, v)).toBeNull();
      expect(await store.policyVersions.storage(w.tenant.id)).toEqual({ versions: 0, first_version: null, entries: 0, bytes: 0 });
    });
  });
}
