import { afterEach, describe, expect, it, vi } from 'vitest';
import { PublishBuckets, TokenBucket } from './limits.js';

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

describe('PublishBuckets', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("shares a publisher's bucket across its connections and keeps it after the last closes until it would have refilled", () => {
    vi.useFakeTimers();
    let now = 0;
    const buckets = new PublishBuckets(10, 3, () => now); // refilled 300 ms after it emptied
    const a = buckets.acquire('tower:T1');
    const b = buckets.acquire('tower:T1');
    expect(b.bucket).toBe(a.bucket);
    expect([a.bucket.take(), b.bucket.take(), a.bucket.take(), b.bucket.take()]).toEqual([true, true, true, false]);
    a.release();
    b.release();
    b.release(); // once only: a second call must not count another connection off
    vi.advanceTimersByTime(299);
    const c = buckets.acquire('tower:T1');
    expect(c.bucket).toBe(a.bucket); // still held: reconnecting buys no burst
    expect(c.bucket.take()).toBe(false);
    c.release();
    expect(buckets.size).toBe(1);
    vi.advanceTimersByTime(300);
    expect(buckets.size).toBe(0); // dropped once refilled: a disconnected publisher holds nothing
    now += 300;
    expect(buckets.acquire('tower:T1').bucket.take()).toBe(true);
  });

  it('gives other publishers, and principals without a key, buckets of their own', () => {
    const buckets = new PublishBuckets(1, 1, () => 0);
    const t1 = buckets.acquire('tower:T1').bucket;
    expect(t1.take()).toBe(true);
    expect(buckets.acquire('tower:T2').bucket.take()).toBe(true);
    expect(buckets.acquire('user:T1').bucket.take()).toBe(true);
    const anonymous = [buckets.acquire(null).bucket, buckets.acquire(null).bucket];
    expect(anonymous[0]).not.toBe(anonymous[1]);
    expect(buckets.size).toBe(3);
  });
});
