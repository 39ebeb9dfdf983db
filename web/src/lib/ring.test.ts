/** The bounded buffer behind the live decision table, and the browser-side rate meter. */
import { describe, expect, it } from 'vitest';
import { RateMeter, Ring } from './ring';

describe('Ring', () => {
  it('keeps the newest records up to its capacity, newest first, each id once', () => {
    const ring = new Ring<{ id: string }>(3);
    for (const id of ['a', 'b', 'c', 'd', 'e']) ring.push({ id });
    expect(ring.values().map((r) => r.id)).toEqual(['e', 'd', 'c']);
    expect(ring.size).toBe(3);
    expect(ring.push({ id: 'd' })).toBe(false);
    expect(ring.has('a')).toBe(false);
    // An evicted id may come back (a backfill of something older than the window).
    expect(ring.push({ id: 'a' })).toBe(true);
    expect(ring.values().map((r) => r.id)).toEqual(['a', 'e', 'd']);
  });

  it('holds a fixed number of records whatever arrives', () => {
    const ring = new Ring<{ id: string }>(2_000);
    for (let i = 0; i < 100_000; i++) ring.push({ id: String(i) });
    expect(ring.size).toBe(2_000);
    expect(ring.values()[0]!.id).toBe('99999');
  });
});

describe('RateMeter', () => {
  it('averages the last complete seconds and forgets older ones', () => {
    const m = new RateMeter(5);
    const t0 = 1_000_000;
    for (let s = 0; s < 5; s++) m.add(100, t0 + s * 1000);
    expect(m.rate(t0 + 5000)).toBe(100);
    expect(m.rate(t0 + 8000)).toBe(40);
    expect(m.rate(t0 + 20_000)).toBe(0);
  });
});
