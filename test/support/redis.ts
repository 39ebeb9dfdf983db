/**
 * What a Redis-backed test needs: the run's Redis URL (see global-setup.ts) and a unique key
 * prefix per test, so tests share one server without seeing each other's keys.
 */
import { randomBytes } from 'node:crypto';
import { describe, inject } from 'vitest';

export function redisUrl(): string | null {
  return inject('redisUrl');
}

/** A key prefix no other test uses: `t<random>:`. */
export function uniquePrefix(): string {
  return `t${randomBytes(6).toString('hex')}:`;
}

/** describe() that skips (the one skip line comes from global setup) when there is no Redis. */
export function describeWithRedis(name: string, fn: (url: string) => void): void {
  const url = redisUrl();
  describe.skipIf(url === null)(name, () => fn(url ?? 'redis://unavailable'));
}
