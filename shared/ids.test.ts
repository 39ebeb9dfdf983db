import { describe, expect, it } from 'vitest';
import { createIdFactory, ULID_RE } from './ids.js';

describe('createIdFactory (ULID)', () => {
  it('produces spec-shaped ULIDs that encode the time', () => {
    const id = createIdFactory(() => 1469918176385)();
    expect(id).toMatch(ULID_RE);
    // Time part from the ULID spec's example timestamp.
    expect(id.slice(0, 10)).toBe('01ARYZ6S41');
  });

  it('is strictly increasing within one millisecond and across milliseconds', () => {
    let t = 1_700_000_000_000;
    const next = createIdFactory(() => t);
    const ids: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      if (i % 1000 === 0) t++;
      ids.push(next());
    }
    const sorted = [...ids].sort();
    expect(sorted).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('stays monotonic when the clock goes backwards', () => {
    let t = 2_000_000;
    const next = createIdFactory(() => t);
    const a = next();
    t -= 1000;
    const b = next();
    expect(b > a).toBe(true);
  });

  it('two factories do not collide', () => {
    const a = createIdFactory(() => 5);
    const b = createIdFactory(() => 5);
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      seen.add(a());
      seen.add(b());
    }
    expect(seen.size).toBe(10_000);
  });
});
