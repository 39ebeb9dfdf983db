import { describe, expect, it } from 'vitest';
import { TokenBucket } from './limits.js';

describe('TokenBucket', () => {
  it('allows a burst, then the sustained rate, on an injected clock', () => {
    let now = 1_000;
    const bucket = new TokenBucket(10, 3, () => now);
    expect([bucket.take(), bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, true, false]);
    now += 100; // 10/s → one token per 100 ms
    expect(bucket.take()).toBe(true);
    expect(bucket.take()).toBe(false);
    now += 10_000; // refills to the burst, never beyond
    expect([bucket.take(), bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, true, false]);
  });

  it('does not mint tokens when the clock steps backwards', () => {
    let now = 5_000;
    const bucket = new TokenBucket(1, 1, () => now);
    expect(bucket.take()).toBe(true);
    now = 0;
    expect(bucket.take()).toBe(false);
    now = 5_999;
    expect(bucket.take()).toBe(false);
    now = 6_000;
    expect(bucket.take()).toBe(true);
  });
});
