/** The run's Redis is real and reachable, and prefixes keep tests apart. */
import { Redis } from 'ioredis';
import { afterAll, expect, it } from 'vitest';
import { describeWithRedis, uniquePrefix } from './redis.js';

describeWithRedis('test Redis', (url) => {
  const redis = new Redis(url, { lazyConnect: true });
  afterAll(() => redis.quit());

  it('answers PING and keeps prefixed keys apart', async () => {
    expect(await redis.ping()).toBe('PONG');
    const a = uniquePrefix();
    const b = uniquePrefix();
    expect(a).not.toBe(b);
    await redis.set(`${a}k`, '1');
    expect(await redis.get(`${b}k`)).toBeNull();
    expect(await redis.get(`${a}k`)).toBe('1');
  });
});
