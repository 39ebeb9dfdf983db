/**
 * Stored policy test cases: "device D (or user U) doing app/action must be allowed/denied (by
 * rule R)". A tenant keeps them next to its policies and runs them against the live version, any
 * stored version, or a what-if draft, so a change that breaks an expectation is seen before it
 * goes live.
 */
import { createError } from '../errors.js';
import type { Effect } from '../mqtt/payloads.js';
import type { PolicyContent } from './content.js';
import { Explainer, type Explanation } from './explain.js';

export interface PolicyTest {
  id: string;
  tenant_id: string;
  name: string;
  /** Exactly one of device_id and user_id is set. */
  device_id: string | null;
  user_id: string | null;
  app: string;
  action: string;
  expected_effect: Effect;
  /** When set, the decision must also name this rule. */
  expected_rule_id: string | null;
  created_at: number;
  updated_at: number;
}

export interface PolicyTestInput {
  name: string;
  device_id?: string | null;
  user_id?: string | null;
  app: string;
  action: string;
  expected_effect: Effect;
  expected_rule_id?: string | null;
}

export type PolicyTestPatch = Partial<PolicyTestInput>;

/**
 * Tests a tenant keeps. A run and a what-if read every one of them, so their number is bounded
 * at creation: a bound applied when reading would leave the tests past it silently unrun.
 */
export const MAX_POLICY_TESTS = 10_000;

/** The bound every adapter checks on create, with the count of the tenant's stored tests. */
export function requireRoomForTest(stored: number): void {
  if (stored < MAX_POLICY_TESTS) return;
  const message = `a tenant keeps at most ${MAX_POLICY_TESTS} policy tests; delete some before adding more`;
  throw createError('CONFLICT', message, [{ field: 'policy_tests', message }]);
}

/** A new test case from its input, as every adapter stores it (optional fields null). */
export function newPolicyTest(tenantId: string, input: PolicyTestInput, id: string, now: number): PolicyTest {
  return {
    id,
    tenant_id: tenantId,
    name: input.name,
    device_id: input.device_id ?? null,
    user_id: input.user_id ?? null,
    app: input.app,
    action: input.action,
    expected_effect: input.expected_effect,
    expected_rule_id: input.expected_rule_id ?? null,
    created_at: now,
    updated_at: now,
  };
}

/** The subject rule every adapter checks on create and on the patched record. */
export function requireOneSubject(t: { device_id?: string | null; user_id?: string | null }): void {
  const hasDevice = t.device_id !== undefined && t.device_id !== null;
  const hasUser = t.user_id !== undefined && t.user_id !== null;
  if (hasDevice === hasUser) {
    const message = 'give exactly one of device_id and user_id';
    throw createError('VALIDATION_FAILED', `device_id: ${message}`, [{ field: 'device_id', message }]);
  }
}

export interface PolicyTestResult {
  test_id: string;
  name: string;
  passed: boolean;
  expected: { effect: Effect; rule_id: string | null };
  actual: { effect: Effect; reason: Explanation['reason']; rule_id: string | null };
  /** The explanation's sentence: why it came out that way. */
  summary: string;
}

export interface PolicyTestRun {
  policy_version: number;
  total: number;
  passed: number;
  failed: number;
  results: PolicyTestResult[];
}

export function runPolicyTest(explainer: Explainer, t: PolicyTest): PolicyTestResult {
  const e = explainer.explain(t.device_id !== null ? { device_id: t.device_id } : { user_id: t.user_id! }, t.app, t.action);
  const passed = e.effect === t.expected_effect && (t.expected_rule_id === null || e.rule_id === t.expected_rule_id);
  return {
    test_id: t.id,
    name: t.name,
    passed,
    expected: { effect: t.expected_effect, rule_id: t.expected_rule_id },
    actual: { effect: e.effect, reason: e.reason, rule_id: e.rule_id },
    summary: e.summary,
  };
}

export function runPolicyTests(content: PolicyContent, tests: readonly PolicyTest[]): PolicyTestRun {
  const explainer = new Explainer(content);
  const results = tests.map((t) => runPolicyTest(explainer, t));
  const passed = results.filter((r) => r.passed).length;
  return { policy_version: content.version, total: results.length, passed, failed: results.length - passed, results };
}
