/**
 * Audit: the cost of one countViolation on the in-process RemediationState. A device violating a
 * rule with an escalation over and over (a flood from one tower, within the tenant's plan rate)
 * makes an escalation every `threshold` violations; the ids those took out of the count stay known
 * for the window (up to 24 h). Counting the next violation must not walk all of them, or one
 * device's flood makes every violation of the worker quadratic (the worker is shared by tenants).
 *
 * Work is measured as Map iteration steps (no durations): the number of entries visited by one
 * call, counted by wrapping the Map iterator's `next` while the call's synchronous body runs.
 */
import { describe, expect, it } from 'vitest';
import { InProcessRemediationState, type ViolationKey } from './remediation-state.js';
import { stepsOf } from '../../test/support/map-steps.js';

const T0 = 1_700_000_000_000;
const KEY: ViolationKey = { tenant_id: 'ten-a', tower_id: 'tw-1', device_id: 'dev-1', rule_id: 'r1' };
const WINDOW_MS = 24 * 3600 * 1000;
const THRESHOLD = 3;

describe('in-process remediation state: cost of a violation', () => {
  it('counting a violation does not walk the ids earlier escalations took out of the count', async () => {
    const state = new InProcessRemediationState();
    // 30,000 violations of one device, one a second, escalating every THRESHOLD (as the engine does).
    for (let i = 0; i < 30_000; i++) {
      const n = await state.countViolation(KEY, `e${i}`, T0 + i * 1000, WINDOW_MS);
      if (n >= THRESHOLD) await state.resetViolations(KEY);
    }
    const { steps, result } = stepsOf(() => state.countViolation(KEY, 'next', T0 + 30_000 * 1000, WINDOW_MS));
    // Still the semantics: a fresh window after the last escalation (30,000 is a multiple of 3).
    expect(await result).toBe(1);
    expect(steps).toBeLessThan(100);
    // A spent id redelivered still answers 0 (its escalation already remediated it).
    expect(await state.countViolation(KEY, 'e5', T0 + 30_001 * 1000, WINDOW_MS)).toBe(0);
    const reset = stepsOf(() => state.resetViolations(KEY));
    await reset.result;
    expect(reset.steps).toBeLessThan(100);
  });

  it('spent ids still leave with their window', async () => {
    const state = new InProcessRemediationState();
    for (let i = 0; i < THRESHOLD; i++) await state.countViolation(KEY, `e${i}`, T0 + i, 60_000);
    await state.resetViolations(KEY);
    expect(await state.countViolation(KEY, 'e0', T0 + 10, 60_000)).toBe(0);
    // After the window, e0 is forgotten: a new event counts from 1 and e0 counts again as new.
    expect(await state.countViolation(KEY, 'late', T0 + 120_000, 60_000)).toBe(1);
    expect(await state.countViolation(KEY, 'e0', T0 + 120_001, 60_000)).toBe(2);
  });
});
