/**
 * Audit: the cost of one takeShared on the in-process RateBudgets. A tenant's plan rate is shared
 * by its active towers (usage-processor.ts), one takeShared per usage batch; a tenant seen at
 * thousands of towers must not make every batch walk all of them (the Redis adapter keeps the
 * members in a sorted set: O(log n)). Work is measured as Map iteration steps, not time.
 */
import { describe, expect, it } from 'vitest';
import { InProcessRateBudgets, type SharedTake } from './rate-budgets.js';
import { stepsOf } from '../../test/support/map-steps.js';

const T0 = 1_700_000_000_000;

const take = (member: string): SharedTake => ({ group: 'plan:ten-a', member, rate_per_s: 50_000, active_window_ms: 10_000 });

describe('in-process shared budget: cost of a take', () => {
  it('a take does not walk every active member of the group', async () => {
    const budgets = new InProcessRateBudgets();
    for (let i = 0; i < 5000; i++) await budgets.takeShared(take(`tower-${i}`), 1, T0 + i);
    const { steps, result } = stepsOf(() => budgets.takeShared(take('tower-0'), 1, T0 + 5000));
    // 5,000 active towers: an equal share is 10 events/s, and one is granted.
    expect(await result).toBe(1);
    expect(steps).toBeLessThan(100);
  });
});
