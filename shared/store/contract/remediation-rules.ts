/**
 * Contract: a rule's remediation and escalation (stored as given, part of the policy version).
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Escalation, Remediation } from '../../domain.js';
import type { Store } from '../port.js';
import { must, ruleInput, seedWorld, type ContractState } from './harness.js';

const remediation: Remediation = { type: 'block_app', duration_s: 600 };
const escalation: Escalation = { threshold: 3, window_s: 300, remediation: { type: 'quarantine', duration_s: 3600 } };

const byId = <T extends { id: string }>(rows: T[]): T[] => [...rows].sort((x, y) => (x.id < y.id ? -1 : 1));

export function describeRemediationRuleContract(state: ContractState): void {
  let store: Store;
  beforeEach(() => {
    store = state.store;
  });
  const { expectBump } = state;

  describe('rule remediation and escalation', () => {
    it('stores both exactly, null when absent, in get, list and the snapshot', async () => {
      const w = await seedWorld(store, 'a');
      const t = w.tenant.id;
      expect(w.rule).toMatchObject({ remediation: null, escalation: null });
      const full = await store.rules.create(t, ruleInput(w.policy.id, { app: 'mail', remediation, escalation }));
      expect(full).toMatchObject({ app: 'mail', remediation, escalation });
      const onlyEscalation = await store.rules.create(t, ruleInput(w.policy.id, { remediation: null, escalation }));
      expect(onlyEscalation).toMatchObject({ remediation: null, escalation });
      expect(await store.rules.get(t, full.id)).toEqual(full);
      expect((await store.rules.list(t)).items).toEqual(byId([w.rule, full, onlyEscalation]));
      expect(must(await store.policySnapshot(t)).rules).toEqual(byId([w.rule, full, onlyEscalation]));
    });

    it('an update of either bumps the version only when the value changes', async () => {
      const w = await seedWorld(store, 'a');
      const t = w.tenant.id;
      const id = w.rule.id;
      const withRemediation = await expectBump(t, 1, () => store.rules.update(t, id, { remediation }));
      expect(withRemediation).toMatchObject({ remediation, escalation: null, app: w.rule.app });
      // Same value, other key order: not a change.
      await expectBump(t, 0, () => store.rules.update(t, id, { remediation: { duration_s: 600, type: 'block_app' } }));
      await expectBump(t, 0, () => store.rules.update(t, id, {}));
      await expectBump(t, 1, () => store.rules.update(t, id, { remediation: { ...remediation, duration_s: 60 } }));
      await expectBump(t, 1, () => store.rules.update(t, id, { escalation }));
      await expectBump(t, 0, () => store.rules.update(t, id, { escalation: structuredClone(escalation) }));
      const deeper = { ...escalation, remediation: { ...escalation.remediation, duration_s: 7200 } };
      await expectBump(t, 1, () => store.rules.update(t, id, { escalation: deeper }));
      const cleared = await expectBump(t, 1, () => store.rules.update(t, id, { remediation: null }));
      expect(cleared).toMatchObject({ remediation: null, escalation: deeper });
      await expectBump(t, 1, () => store.rules.update(t, id, { escalation: null }));
      await expectBump(t, 0, () => store.rules.update(t, id, { escalation: null, remediation: null }));
      expect(await store.rules.get(t, id)).toMatchObject({ remediation: null, escalation: null });
    });

    it('another tenant can neither read nor set a rule’s remediation', async () => {
      const a = await seedWorld(store, 'a');
      const b = await seedWorld(store, 'b');
      expect(await store.rules.update(b.tenant.id, a.rule.id, { remediation, escalation })).toBeNull();
      expect(await store.rules.get(a.tenant.id, a.rule.id)).toEqual(a.rule);
      expect(must(await store.policySnapshot(b.tenant.id)).rules).toEqual([b.rule]);
    });
  });
}
