import { describe, expect, it } from 'vitest';
import type { Device, Plan, Policy, PolicyRule, Tenant } from '../../domain.js';
import { newTenant } from './defaults.js';
import {
  BUMPS,
  deviceUpdateBumps,
  planUpdateBumps,
  policyUpdateBumps,
  ruleUpdateBumps,
  sameValue,
  tenantUpdateBumps,
} from './policy-version.js';

const tenant: Tenant = newTenant({ name: 'acme' }, 't1', 1);
const policy: Policy = { id: 'p', tenant_id: 't1', name: 'p', description: null, severity: 'high', created_at: 1, updated_at: 1 };
const device: Device = { id: 'd', tenant_id: 't1', user_id: 'u1', name: 'phone', os: null, created_at: 1, updated_at: 1 };
const rule: PolicyRule = {
  id: 'r',
  tenant_id: 't1',
  policy_id: 'p',
  role_id: null,
  app: 'slack',
  action: '*',
  permission: 'deny',
  remediation: { type: 'block_app', duration_s: 600 },
  escalation: null,
  created_at: 1,
  updated_at: 1,
};
const plan: Plan = {
  id: 'gold',
  name: 'Gold',
  auto_remediation: false,
  max_devices: 10,
  max_events_per_s: null,
  retention_days: 30,
  created_at: 1,
  updated_at: 1,
};

describe('policy version rules', () => {
  it('creates bump only for what a decision reads; every delete of the policy graph bumps', () => {
    expect(Object.entries(BUMPS).filter(([, b]) => b.create).map(([k]) => k)).toEqual(['policies', 'rules', 'devices']);
    expect(Object.entries(BUMPS).filter(([, b]) => b.delete).map(([k]) => k)).toEqual([
      'users',
      'roles',
      'policies',
      'rules',
      'devices',
    ]);
  });

  it('a tenant bumps on default_effect or plan changes only', () => {
    expect(tenantUpdateBumps(tenant, { name: 'x', alert_window_s: 5, audit_retention_days: 3 })).toBe(false);
    expect(tenantUpdateBumps(tenant, { default_effect: 'allow', plan_id: 'free' })).toBe(false);
    expect(tenantUpdateBumps(tenant, { default_effect: 'deny' })).toBe(true);
    expect(tenantUpdateBumps(tenant, { plan_id: 'premium' })).toBe(true);
  });

  it('a policy bumps on severity, a device on its owner', () => {
    expect(policyUpdateBumps(policy, { name: 'n', description: 'd', severity: 'high' })).toBe(false);
    expect(policyUpdateBumps(policy, { severity: 'low' })).toBe(true);
    expect(deviceUpdateBumps(device, { name: 'n', os: 'android', user_id: 'u1' })).toBe(false);
    expect(deviceUpdateBumps(device, { user_id: null })).toBe(true);
  });

  it('a rule bumps on any decision field, comparing JSON by value not key order', () => {
    expect(ruleUpdateBumps(rule, { ...rule, updated_at: 9 })).toBe(false);
    expect(ruleUpdateBumps(rule, { ...rule, remediation: { duration_s: 600, type: 'block_app' } })).toBe(false);
    for (const change of [
      { role_id: 'r2' },
      { app: 'mail' },
      { action: 'upload' },
      { permission: 'allow' as const },
      { remediation: null },
      { escalation: { threshold: 2, window_s: 60, remediation: { type: 'notify' as const, duration_s: 1 } } },
    ]) {
      expect(ruleUpdateBumps(rule, { ...rule, ...change }), JSON.stringify(change)).toBe(true);
    }
  });

  it('a plan bumps on its limits and features, not its name', () => {
    expect(planUpdateBumps(plan, { ...plan, name: 'GOLD', updated_at: 5 })).toBe(false);
    expect(planUpdateBumps(plan, { ...plan, auto_remediation: true })).toBe(true);
    expect(planUpdateBumps(plan, { ...plan, max_devices: null })).toBe(true);
    expect(planUpdateBumps(plan, { ...plan, max_events_per_s: 5 })).toBe(true);
    expect(planUpdateBumps(plan, { ...plan, retention_days: 7 })).toBe(true);
  });

  it('sameValue compares nested values structurally', () => {
    expect(sameValue({ a: [1, { b: 2, c: 3 }] }, { a: [1, { c: 3, b: 2 }] })).toBe(true);
    expect(sameValue({ a: [1, 2] }, { a: [2, 1] })).toBe(false);
    expect(sameValue(null, {})).toBe(false);
    expect(sameValue(null, null)).toBe(true);
  });
});
