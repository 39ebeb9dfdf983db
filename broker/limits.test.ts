import { describe, expect, it } from 'vitest';
import { FrameSizeGuard, TokenBucket } from './limits.js';

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

/** Fixed header + body of an MQTT packet with the given remaining length (MQTT 3.1.1 §2.2.3). */
function frame(remaining: number): Buffer {
  const len: number[] = [];
  let x = remaining;
  do {
    let b = x % 128;
    x = Math.floor(x / 128);
    if (x > 0) b |= 0x80;
    len.push(b);
  } while (x > 0);
  return Buffer.concat([Buffer.from([0x30, ...len]), Buffer.alloc(remaining)]);
}

describe('FrameSizeGuard', () => {
  it('follows frames split across and packed into chunks', () => {
    const guard = new FrameSizeGuard(1_000);
    const stream = Buffer.concat([frame(0), frame(5), frame(1_000), frame(200), frame(127), frame(128)]);
    for (let i = 0; i < stream.length; i += 7) expect(guard.feed(stream.subarray(i, i + 7))).toBe('ok');
  });

  it('flags a frame that declares more than the limit as soon as its header arrives', () => {
    const guard = new FrameSizeGuard(1_000);
    expect(guard.feed(frame(10))).toBe('ok');
    // Only the header of a 1 MB frame: the body has not been sent (or buffered) yet.
    expect(guard.feed(frame(1_000_000).subarray(0, 4))).toBe('too_large');
  });

  it('flags a remaining length longer than four bytes [MQTT-2.2.3]', () => {
    const guard = new FrameSizeGuard(Number.MAX_SAFE_INTEGER);
    expect(guard.feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))).toBe('malformed');
  });
});
