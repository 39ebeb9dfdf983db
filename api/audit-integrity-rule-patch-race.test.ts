/**
 * Audit (data integrity, concurrent requests): two PATCHes of one rule that are each valid against
 * the rule as it was must not together store what the API refuses from any single request.
 *
 * "Only deny rules remediate" was checked in the route against the rule read before the update;
 * PATCH A {permission: allow} and PATCH B {remediation} both read the deny rule without a
 * remediation, both passed, both answered 200, and the stored rule was an allow rule holding a
 * remediation (which no single request can create: 400). The check now runs on the row inside the
 * update's transaction (rules.update's `check`), so the PATCH that commits second is refused.
 *
 * The interleaving is made deterministic, not left to timing: the rule read each PATCH starts with
 * waits until both requests have read it (both then hold the same stale copy).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { PolicyRule } from '../shared/domain.js';
import { OPERATOR_EMAIL, createTenant, json, login, post, startHarness, type Harness, type Session } from './test-support.js';

let h: Harness;
let owner: Session;
let policyId: string;

beforeAll(async () => {
  h = await startHarness();
  const operator = await login(h.app, OPERATOR_EMAIL);
  owner = (await createTenant(h.app, operator, 'RuleRace')).owner;
  policyId = (await post<{ policy: { id: string } }>(h.app, owner, '/api/v1/policies', { name: 'No uploads', severity: 'high' })).policy.id;
});

afterAll(async () => {
  vi.restoreAllMocks();
  await h?.close();
});

/** Holds every reader of a rule until `parties` of them have read it (or 5 s have passed). */
function barrierOnRuleReads(parties: number): { release: () => void } {
  const repo = h.store.rules;
  const original = repo.get.bind(repo);
  const held: Array<() => void> = [];
  const release = (): void => {
    for (const go of held.splice(0)) go();
  };
  const timer = setTimeout(release, 5000);
  vi.spyOn(repo, 'get').mockImplementation(async (tenantId, id) => {
    const row = await original(tenantId, id);
    await new Promise<void>((resolve) => {
      held.push(resolve);
      if (held.length >= parties) {
        clearTimeout(timer);
        release();
      }
    });
    return row;
  });
  return { release };
}

describe('concurrent PATCHes of one rule', () => {
  it('never store an allow rule with a remediation: one PATCH succeeds, the other is a 400', async () => {
    const created = await post<{ rule: PolicyRule }>(h.app, owner, '/api/v1/policy-rules', {
      policy_id: policyId,
      app: '*',
      action: '*',
      permission: 'deny',
    });
    const id = created.rule.id;
    const remediation = { type: 'block_app', duration_s: 600 };

    const { release } = barrierOnRuleReads(2);
    const patch = (payload: object) => h.app.inject({ method: 'PATCH', url: `/api/v1/policy-rules/${id}`, headers: owner.headers, payload });
    const [makeAllow, addRemediation] = await Promise.all([patch({ permission: 'allow' }), patch({ remediation })]);
    release();
    vi.restoreAllMocks();

    const statuses = [makeAllow.statusCode, addRemediation.statusCode].sort();
    expect(statuses, `${makeAllow.body} | ${addRemediation.body}`).toEqual([200, 400]);
    const refused = makeAllow.statusCode === 400 ? makeAllow : addRemediation;
    expect(json<{ error: { code: string } }>(refused).error.code).toBe('VALIDATION_FAILED');

    const stored = json<{ rule: PolicyRule }>(await h.app.inject({ method: 'GET', url: `/api/v1/policy-rules/${id}`, headers: owner.headers })).rule;
    expect(stored.permission === 'deny' || (stored.remediation === null && stored.escalation === null), JSON.stringify(stored)).toBe(true);
    // The winner's change is what is stored, whole.
    if (makeAllow.statusCode === 200) expect(stored).toMatchObject({ permission: 'allow', remediation: null });
    else expect(stored).toMatchObject({ permission: 'deny', remediation });
  });
});
