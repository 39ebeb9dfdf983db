/**
 * Audit: the in-process adapter remembers takeSharedOnce grants (one per usage batch) in bounded
 * memory: expired ones go, and beyond the bound the oldest go even before they expire.
 */
import { describe, expect, it } from 'vitest';
import { InProcessRateBudgets, type SharedTake } from './rate-budgets.js';

const T0 = 1_700_000_000_000;
const req: SharedTake = { group: 'plan:t', member: 'A', rate_per_s: 1000, active_window_ms: 10_000 };
const once = (id: string) => ({ id, remember_ms: 60_000 });

describe('InProcessRateBudgets grant memory', () => {
  it('keeps at most maxGrants, forgetting the oldest first; a repeat counts as use', async () => {
    const budgets = new InProcessRateBudgets({ maxGrants: 4 });
    const repeated = async (id: string) => (await budgets.takeSharedOnce(req, once(id), 1, T0)).repeated;
    for (const id of ['a', 'b', 'c']) expect(await repeated(id)).toBe(false);
    expect(await repeated('a')).toBe(true);
    for (const id of ['d', 'e']) expect(await repeated(id)).toBe(false);
    // 'b' was taken with 'a' but not repeated: gone; 'a' was used since, and kept.
    expect(await repeated('a')).toBe(true);
    expect(await repeated('b')).toBe(false);
  });

  it('forgets a grant remember_ms after its latest repeat, on the caller clock', async () => {
    const budgets = new InProcessRateBudgets({ maxGrants: 10 });
    expect(await budgets.takeSharedOnce(req, once('a'), 5, T0)).toEqual({ granted: 5, repeated: false });
    expect(await budgets.takeSharedOnce(req, once('a'), 5, T0 + 59_999)).toEqual({ granted: 5, repeated: true });
    expect(await budgets.takeSharedOnce(req, once('a'), 5, T0 + 119_998)).toEqual({ granted: 5, repeated: true });
    expect(await budgets.takeSharedOnce(req, once('a'), 5, T0 + 179_998)).toEqual({ granted: 5, repeated: false });
  });
});
