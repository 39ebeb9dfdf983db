/**
 * What every part of the store contract shares: the harness an adapter provides, fixtures that
 * build a tenant's decision path, and assertion helpers. Written only against the port.
 */
import { expect } from 'vitest';
import type { Device, Policy, PolicyRule, Role, Tenant, User } from '../../domain.js';
import { isEdgeplaneError, type ErrorCode } from '../../errors.js';
import { createIdFactory } from '../../ids.js';
import type { ConsoleUserInput, DecidedUsage, Page, PolicyChangeScope, RecordUsageResult, RuleInput, Store, StoreHooks } from '../port.js';

export interface PolicyChange {
  tenantId: string;
  version: number;
  scope: PolicyChangeScope;
}

export interface StoreContractHarness {
  store: Store;
  hooks: { policyChanges: PolicyChange[] };
  cleanup: () => Promise<void>;
}

/** StoreHooks that record every policy change, for the harness `open` returns. */
export function recordingHooks(): { hooks: StoreHooks; policyChanges: PolicyChange[] } {
  const policyChanges: PolicyChange[] = [];
  return { hooks: { onPolicyChanged: (tenantId, version, scope) => policyChanges.push({ tenantId, version, scope }) }, policyChanges };
}

export const eventId = createIdFactory();

export const T0 = 1_700_000_000_000;

export function must<T>(value: T | null | undefined, what = 'value'): T {
  if (value === null || value === undefined) throw new Error(`expected ${what}`);
  return value;
}

export async function expectError(p: Promise<unknown>, code: ErrorCode, messageIncludes?: string): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(isEdgeplaneError(err), `expected EdgeplaneError ${code}, got ${String(err)}`).toBe(true);
  if (!isEdgeplaneError(err)) return;
  expect(err.code).toBe(code);
  if (messageIncludes !== undefined) expect(err.message).toContain(messageIncludes);
}

export async function walk<T extends { id: string }>(fetch: (cursor: string | null) => Promise<Page<T>>): Promise<T[]> {
  const all: T[] = [];
  let cursor: string | null = null;
  for (let guard = 0; guard < 10_000; guard++) {
    const page: Page<T> = await fetch(cursor);
    all.push(...page.items);
    if (page.next_cursor === null) return all;
    cursor = page.next_cursor;
  }
  throw new Error('pagination did not terminate');
}

export const ids = (rows: Array<{ id: string }>): string[] => rows.map((r) => r.id);
export const sortedIds = (rows: Array<{ id: string }>): string[] => ids(rows).sort();

export interface World {
  tenant: Tenant;
  user: User;
  role: Role;
  policy: Policy;
  rule: PolicyRule;
  device: Device;
}

/** One tenant with a complete decision path: device → user → role → policy → rule. */
export async function seedWorld(store: Store, name: string): Promise<World> {
  const tenant = await store.tenants.create({ name });
  const user = await store.users.create(tenant.id, { name: `${name}-user`, email: `${name}@example.com` });
  const role = await store.roles.create(tenant.id, { name: `${name}-role` });
  const policy = await store.policies.create(tenant.id, { name: `${name}-policy`, severity: 'high' });
  const rule = await store.rules.create(tenant.id, { policy_id: policy.id, app: 'slack', action: '*', permission: 'deny' });
  const deviceId = `dev-${name}-${eventId().slice(-8)}`;
  const device = await store.devices.create(tenant.id, { id: deviceId, name: 'phone', user_id: user.id });
  await store.userRoles.assign(tenant.id, user.id, role.id);
  await store.rolePolicies.assign(tenant.id, role.id, policy.id);
  return { tenant, user, role, policy, rule, device: must(await store.devices.get(tenant.id, device.id)) };
}

export function usageEvent(w: World, overrides: Partial<DecidedUsage> = {}): DecidedUsage {
  return {
    id: eventId(),
    tenant_id: w.tenant.id,
    tower_id: 'tower-1',
    batch_id: 'batch-1',
    device_id: w.device.id,
    user_id: w.user.id,
    app: 'slack',
    action: 'upload',
    bytes: 1200,
    ts: 1_700_000_000_000,
    received_at: 1_700_000_000_100,
    effect: 'allow',
    reason: 'default',
    rule_id: null,
    policy_id: null,
    policy_version: w.tenant.policy_version,
    severity: null,
    ...overrides,
  };
}

export function denyEvent(w: World, overrides: Partial<DecidedUsage> = {}): DecidedUsage {
  return usageEvent(w, {
    effect: 'deny',
    reason: 'rule',
    rule_id: w.rule.id,
    policy_id: w.policy.id,
    severity: 'high',
    ...overrides,
  });
}

export function consoleUser(tenant_id: string | null, email: string, password_hash = 'h'): ConsoleUserInput {
  return { tenant_id, email, console_role: tenant_id === null ? 'operator' : 'admin', password_hash };
}

export function ruleInput(policy_id: string, extra: Partial<RuleInput> = {}): RuleInput {
  return { policy_id, app: '*', action: '*', permission: 'deny', ...extra };
}

/**
 * The open harness of the running test, shared by every part of the suite. Parts copy `store`
 * and `changes` into locals in their own beforeEach, which runs after the suite's open().
 */
export class ContractState {
  harness: StoreContractHarness | null = null;

  get store(): Store {
    return must(this.harness, 'an open harness').store;
  }

  get changes(): PolicyChange[] {
    return must(this.harness, 'an open harness').hooks.policyChanges;
  }

  /** Runs `op` and asserts it bumped the tenant's version by exactly `by` and announced it. */
  readonly expectBump = async <T>(tenantId: string, by: 0 | 1, op: () => Promise<T>): Promise<T> => {
    const before = must(await this.store.tenants.get(tenantId), 'tenant').policy_version;
    const heard = this.changes.length;
    const result = await op();
    const after = must(await this.store.tenants.get(tenantId), 'tenant').policy_version;
    expect(after, 'policy_version').toBe(before + by);
    expect(this.changes.slice(heard)).toMatchObject(by === 1 ? [{ tenantId, version: after }] : []);
    return result;
  };

  readonly recordBatch = async (w: World, records: DecidedUsage[], now = T0, windowS = 300): Promise<RecordUsageResult> =>
    this.store.usage.recordBatch({
      tenant_id: w.tenant.id,
      tower_id: 'tower-1',
      batch_id: eventId(),
      now,
      alert_window_s: windowS,
      records,
    });
}
