/**
 * Contract of the RateBudgets port: run against the in-process and the Redis adapter. Time is
 * passed in, so the suite steps a number instead of sleeping.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RateBudgets } from '../rate-budgets.js';

export interface RateBudgetsHarness {
  budgets: RateBudgets;
  cleanup(): Promise<void>;
}

const T0 = 1_700_000_000_000;

export function describeRateBudgetsContract(name: string, open: () => Promise<RateBudgetsHarness>): void {
  describe(`RateBudgets contract: ${name}`, () => {
    let h: RateBudgetsHarness;
    beforeEach(async () => {
      h = await open();
    });
    afterEach(async () => {
      await h.cleanup();
    });

    it('grants a full burst at first, then only what refilled', async () => {
      const limit = { rate_per_s: 10, burst: 20 };
      expect(await h.budgets.take('k', limit, 15, T0)).toBe(15);
      expect(await h.budgets.take('k', limit, 15, T0)).toBe(5);
      expect(await h.budgets.take('k', limit, 1, T0)).toBe(0);
      // 500 ms later: 5 tokens.
      expect(await h.budgets.take('k', limit, 100, T0 + 500)).toBe(5);
      // Never above the burst, however long the wait.
      expect(await h.budgets.take('k', limit, 100, T0 + 3_600_000)).toBe(20);
    });

    it('keeps keys apart, and reset refills one key', async () => {
      const limit = { rate_per_s: 1, burst: 2 };
      expect(await h.budgets.take('a', limit, 2, T0)).toBe(2);
      expect(await h.budgets.take('b', limit, 2, T0)).toBe(2);
      expect(await h.budgets.take('a', limit, 1, T0)).toBe(0);
      expect(await h.budgets.level('a', limit, T0)).toBeCloseTo(0);
      expect(await h.budgets.level('a', limit, T0 + 1500)).toBeCloseTo(1.5);
      await h.budgets.reset('a');
      expect(await h.budgets.take('a', limit, 5, T0)).toBe(2);
      expect(await h.budgets.take('b', limit, 1, T0)).toBe(0);
    });

    it('a new rate (a plan change) applies at once, starting full', async () => {
      expect(await h.budgets.take('k', { rate_per_s: 2, burst: 2 }, 5, T0)).toBe(2);
      expect(await h.budgets.take('k', { rate_per_s: 2, burst: 2 }, 5, T0)).toBe(0);
      expect(await h.budgets.take('k', { rate_per_s: 100, burst: 100 }, 5, T0)).toBe(5);
      const shared = { group: 'g', member: 'A', rate_per_s: 2, active_window_ms: 1000 };
      expect(await h.budgets.takeShared(shared, 5, T0)).toBe(2);
      expect(await h.budgets.takeShared({ ...shared, rate_per_s: 50 }, 5, T0)).toBe(5);
    });

    it('enforces rates that are not round numbers (5 per 900 s)', async () => {
      const limit = { rate_per_s: 5 / 900, burst: 5 };
      expect(await h.budgets.take('k', limit, 10, T0)).toBe(5);
      expect(await h.budgets.take('k', limit, 1, T0 + 1000)).toBe(0);
      expect(await h.budgets.take('k', limit, 1, T0 + 180_000)).toBe(1);
      expect(await h.budgets.take('k', limit, 1, T0 + 180_000)).toBe(0);
    });

    it('a clock that goes backwards neither refills nor breaks the bucket', async () => {
      const limit = { rate_per_s: 10, burst: 10 };
      expect(await h.budgets.take('k', limit, 10, T0)).toBe(10);
      expect(await h.budgets.take('k', limit, 10, T0 - 5000)).toBe(0);
      expect(await h.budgets.take('k', limit, 10, T0 + 100)).toBe(1);
    });

    it('shares a group budget: a flooding member cannot spend the share of the others', async () => {
      const req = (member: string) => ({ group: 'tenant-1', member, rate_per_s: 100, active_window_ms: 10_000 });
      // Alone, a member may use the whole group budget.
      expect(await h.budgets.takeShared(req('A'), 1000, T0)).toBe(100);
      // B becomes active: from now on each of the two gets half per second.
      let bGot = 0;
      let aGot = 0;
      for (let s = 1; s <= 10; s++) {
        const t = T0 + s * 1000;
        bGot += await h.budgets.takeShared(req('B'), 40, t); // well within a half share
        aGot += await h.budgets.takeShared(req('A'), 1000, t); // flooding
      }
      // B is never refused; A gets what B leaves (at least its equal share), never more.
      expect(bGot).toBe(400);
      expect(aGot).toBeLessThanOrEqual(10 * 60);
      expect(aGot).toBeGreaterThanOrEqual(10 * 50);
    });

    it('is work-conserving: a member above its equal share is not refused while the group has room', async () => {
      const req = (member: string) => ({ group: 'g', member, rate_per_s: 100, active_window_ms: 10_000 });
      // Four members; one sends 40/s (above the equal 25/s share), the others 10/s each.
      let big = 0;
      for (let s = 0; s < 10; s++) {
        const t = T0 + s * 1000;
        for (const m of ['B', 'C', 'D']) expect(await h.budgets.takeShared(req(m), 10, t)).toBe(10);
        big += await h.budgets.takeShared(req('A'), 40, t);
      }
      expect(big).toBe(400);
    });

    it('a member that went quiet stops counting after the window; groups are independent', async () => {
      const req = (group: string, member: string) => ({ group, member, rate_per_s: 10, active_window_ms: 1000 });
      expect(await h.budgets.takeShared(req('g', 'A'), 1, T0)).toBe(1);
      // B gets what A asked for leaves (10 − 1.2 × 1, rounded down), more than an equal share.
      expect(await h.budgets.takeShared(req('g', 'B'), 100, T0)).toBe(8);
      // Other groups are untouched.
      expect(await h.budgets.takeShared(req('h', 'B'), 100, T0)).toBe(10);
      // A is idle for longer than the window: B alone again, refilled to the whole budget.
      expect(await h.budgets.takeShared(req('g', 'B'), 100, T0 + 5000)).toBe(10);
    });

    it('a named take repeated gets the first grant back and spends nothing, until it is forgotten', async () => {
      const req = { group: 'plan:t', member: 'A', rate_per_s: 10, active_window_ms: 10_000 };
      const once = (id: string) => ({ id, remember_ms: 60_000 });
      expect(await h.budgets.takeSharedOnce(req, once('b1'), 8, T0)).toEqual({ granted: 8, repeated: false });
      // Again at once, and again after the budget refilled: the first grant, nothing spent.
      expect(await h.budgets.takeSharedOnce(req, once('b1'), 8, T0)).toEqual({ granted: 8, repeated: true });
      expect(await h.budgets.takeSharedOnce(req, once('b2'), 5, T0)).toEqual({ granted: 2, repeated: false });
      expect(await h.budgets.takeSharedOnce(req, once('b2'), 5, T0 + 5000)).toEqual({ granted: 2, repeated: true });
      // Concurrent repeats of one take are charged once (one atomic step).
      const racing = await Promise.all([1, 2, 3].map(() => h.budgets.takeSharedOnce(req, once('b3'), 4, T0 + 5000)));
      expect(racing.map((r) => r.granted)).toEqual([4, 4, 4]);
      expect(racing.filter((r) => !r.repeated)).toHaveLength(1);
      expect(await h.budgets.takeShared(req, 100, T0 + 5000)).toBe(6);
      // Names are per group; remember_ms after the latest repeat (the caller's clock) the take is
      // charged as new: b1 was last repeated at T0, b2 at T0 + 5 s.
      expect(await h.budgets.takeSharedOnce({ ...req, group: 'plan:u' }, once('b1'), 3, T0 + 5000)).toEqual({ granted: 3, repeated: false });
      expect(await h.budgets.takeSharedOnce(req, once('b1'), 8, T0 + 61_000)).toEqual({ granted: 8, repeated: false });
      expect(await h.budgets.takeSharedOnce(req, once('b2'), 5, T0 + 64_000)).toEqual({ granted: 2, repeated: true });
    });
  });
}
