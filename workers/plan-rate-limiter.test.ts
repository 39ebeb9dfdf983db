import { describe, expect, it } from 'vitest';
import { PlanRateLimiter } from './plan-rate-limiter.js';

describe('PlanRateLimiter', () => {
  it('grants up to one second of burst, then the refill rate', () => {
    let now = 0;
    const l = new PlanRateLimiter(() => now);
    expect(l.take('A', 100, 80)).toBe(80);
    expect(l.take('A', 100, 80)).toBe(20);
    expect(l.take('A', 100, 10)).toBe(0);
    now += 500;
    expect(l.take('A', 100, 80)).toBe(50);
  });

  it('tenants have separate buckets and null means unlimited', () => {
    const l = new PlanRateLimiter(() => 0);
    expect(l.take('A', 10, 50)).toBe(10);
    expect(l.take('B', 10, 50)).toBe(10);
    expect(l.take('C', null, 1_000_000)).toBe(1_000_000);
  });

  it('a plan change takes effect at once', () => {
    const l = new PlanRateLimiter(() => 0);
    expect(l.take('A', 10, 50)).toBe(10);
    expect(l.take('A', 1000, 50)).toBe(50);
  });
});
