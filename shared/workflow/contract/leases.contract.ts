/** Contract of the Leases port: run against the in-process and the Redis adapter. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Leases } from '../leases.js';

export interface LeasesHarness {
  leases: Leases;
  cleanup(): Promise<void>;
}

const T0 = 1_700_000_000_000;

export function describeLeasesContract(name: string, open: () => Promise<LeasesHarness>): void {
  describe(`Leases contract: ${name}`, () => {
    let h: LeasesHarness;
    beforeEach(async () => {
      h = await open();
    });
    afterEach(async () => {
      await h.cleanup();
    });

    it('one owner at a time; the holder may renew; another gets it once it expired', async () => {
      expect(await h.leases.acquire('retention', 'w1', T0, 1000)).toBe(true);
      expect(await h.leases.acquire('retention', 'w2', T0 + 10, 1000)).toBe(false);
      expect(await h.leases.acquire('retention', 'w1', T0 + 500, 1000)).toBe(true);
      expect(await h.leases.acquire('retention', 'w2', T0 + 1400, 1000)).toBe(false);
      expect(await h.leases.acquire('retention', 'w2', T0 + 1500, 1000)).toBe(true);
      expect(await h.leases.acquire('other', 'w1', T0, 1000)).toBe(true);
    });

    it('release frees it for others, and only its holder can release', async () => {
      expect(await h.leases.acquire('bundle', 'w1', T0, 60_000)).toBe(true);
      await h.leases.release('bundle', 'w2');
      expect(await h.leases.acquire('bundle', 'w2', T0, 60_000)).toBe(false);
      await h.leases.release('bundle', 'w1');
      expect(await h.leases.acquire('bundle', 'w2', T0, 60_000)).toBe(true);
    });

    it('of many concurrent contenders exactly one wins', async () => {
      const wins = await Promise.all(Array.from({ length: 20 }, (_, i) => h.leases.acquire('race', `w${i}`, T0, 60_000)));
      expect(wins.filter(Boolean)).toHaveLength(1);
    });
  });
}
