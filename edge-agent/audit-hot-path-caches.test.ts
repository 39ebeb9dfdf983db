/**
 * The caches the agent's per-event path keeps (issue #10): the edge policy's device → tenant cache
 * (GenerationalCache: hits write nothing, bounded, a device in use is never forgotten), and the
 * downlink decoders that read a payload where it lies.
 */
import { describe, expect, it } from 'vitest';
import { DecisionBatchSchema, decodePayload } from '../shared/mqtt/payloads.js';
import { GenerationalCache } from '../shared/generational-cache.js';

describe('GenerationalCache', () => {
  it('never holds more than its size, however many keys pass through', () => {
    const cache = new GenerationalCache<string, number>(100);
    for (let i = 0; i < 10_000; i++) {
      cache.set(`k${i}`, i);
      expect(cache.size).toBeLessThanOrEqual(100);
    }
  });

  it('keeps an entry that is used at least once per half of its size, whatever else passes', () => {
    const cache = new GenerationalCache<string, number>(100);
    cache.set('hot', 1);
    for (let i = 0; i < 10_000; i++) {
      cache.set(`cold${i}`, i);
      if (i % 49 === 0) expect(cache.get('hot')).toBe(1);
    }
    expect(cache.get('hot')).toBe(1);
  });

  it('remembers at least the last half of its size of distinct keys, and forgets older unused ones', () => {
    const cache = new GenerationalCache<string, number>(100);
    for (let i = 0; i < 1000; i++) cache.set(`k${i}`, i);
    for (let i = 950; i < 1000; i++) expect(cache.get(`k${i}`)).toBe(i);
    expect(cache.get('k0')).toBeUndefined();
  });

  it('caches null answers (an unknown device), replaces values and clears', () => {
    const cache = new GenerationalCache<string, string | null>(4);
    cache.set('unknown', null);
    expect(cache.get('unknown')).toBeNull();
    cache.set('a', 'x');
    cache.set('a', 'y');
    expect(cache.get('a')).toBe('y');
    expect(cache.size).toBe(2);
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.get('a')).toBeUndefined();
  });

  it('refuses a size that cannot hold two generations', () => {
    expect(() => new GenerationalCache(1)).toThrow(/at least 2/);
  });
});

describe('decodePayload on a view into a larger buffer', () => {
  it('reads exactly the bytes of the view (a packet inside a socket chunk)', () => {
    const batch = { v: 1, id: '01ARYZ6S41TSV4RRFFQ69G5FAV', batch_id: '01ARYZ6S41TSV4RRFFQ69G5FAV', policy_version: 1, decided_at: 5, decisions: [], rejected: [] };
    const text = JSON.stringify(batch);
    const chunk = Buffer.from(`garbage${text}trailing`);
    const view = new Uint8Array(chunk.buffer, chunk.byteOffset + 7, Buffer.byteLength(text));
    expect(decodePayload(DecisionBatchSchema, view)).toEqual({ ok: true, value: batch });
    expect(decodePayload(DecisionBatchSchema, chunk.subarray(7, 7 + text.length))).toEqual({ ok: true, value: batch });
  });
});
