/**
 * The Redis session store's retained index (retained-redis.ts) on the run's real redis-server:
 * a tower's SUBSCRIBE gets exactly the retained messages its filters match — never another
 * tower's — without a scan of the whole retained hash; deletes, messages retained before the
 * index existed, and stale members are handled; two nodes writing the same topics keep the
 * index and the hash in step. Bucket arithmetic is checked against MQTT matching.
 */
import { Redis } from 'ioredis';
import msgpack from 'msgpack-lite';
import { afterAll, describe, expect, it } from 'vitest';
import { describeWithRedis, uniquePrefix } from '../test/support/redis.js';
import type { BrokerBackends } from './backends.js';
import { redisBackends, sessionKeyPrefix } from './backends-redis.js';
import { bucketOf, bucketsOf, retainedEdgeTopics, retainedTopicsUnder, type RetainedLookupStats } from './retained-redis.js';
import { RetainedIndex } from './retained-index.js';

interface RetainedCalls {
  storeRetained(packet: { cmd: 'publish'; topic: string; payload: Buffer; qos: number; retain: boolean }): Promise<void>;
  createRetainedStreamCombi(patterns: string[]): AsyncIterable<{ topic: string; payload: Buffer }>;
}

const retain = (topic: string, payload = topic) => ({ cmd: 'publish' as const, topic, payload: Buffer.from(payload), qos: 1, retain: true });

async function topicsOf(p: RetainedCalls, patterns: string[]): Promise<string[]> {
  const out: string[] = [];
  for await (const packet of p.createRetainedStreamCombi(patterns)) out.push(packet.topic);
  return out.sort();
}

/** A tower's one SUBSCRIBE (shared/mqtt/topics.ts filters). */
const towerFilters = (tower: string) => [`tenants/+/towers/${tower}/decisions`, `tenants/+/towers/${tower}/commands`, `tenants/+/towers/${tower}/policy/#`, 'directory/#'];

describe('retained buckets', () => {
  it('every topic a filter matches lies in a bucket the filter reaches, or the filter falls back to the scan', () => {
    const topics = [
      'tenants/a/towers/t1/policy', 'tenants/a/towers/t1/policy/0', 'tenants/b/towers/t1/policy/3', 'tenants/a/towers/t2/policy',
      'tenants/a/towers/t2', 'tenants/a/towers', 'tenants/a/policy', 'tenants/a/other/t1/x', 'directory/tok', 'directory/tok/1',
      'towers/t1/status', 'towers/t2/status', 'carriers/c/feeds/results', '$SYS/x/y',
    ];
    const filters = [
      ...towerFilters('t1'), 'tenants/+/towers/t1/#', 'tenants/a/towers/t2', 'tenants/+/+/t1/policy', 'tenants/a/policy', 'tenants/+/policy',
      'tenants/a/towers', 'tenants/#', 'tenants/a/#', 'tenants/+/towers/+/policy', '#', '+/t1/status', 'towers/+/status', 'directory/tok',
      'tenants/a/other/t1/x', 'tenants/+/other/+/x', '$SYS/#',
    ];
    for (const f of filters) {
      const index = new RetainedIndex();
      for (const t of topics) index.add(t);
      const matched = index.match([f]);
      const reach = bucketsOf(f);
      if (reach === null) continue;
      for (const t of matched) expect(reach, `${f} → ${t}`).toContain(bucketOf(t));
    }
    // A tower's own SUBSCRIBE never needs the scan, and reaches no other tower's bucket.
    const reach = towerFilters('t1').flatMap((f) => bucketsOf(f)!);
    expect(new Set(reach)).toEqual(new Set(['tower:t1', 'level:tenants', 'level:directory']));
  });
});

describeWithRedis('Redis retained index', (url) => {
  const opened: BrokerBackends[] = [];
  const admin = new Redis(url, { lazyConnect: true });
  afterAll(async () => {
    for (const b of opened) {
      await new Promise<void>((resolve) => b.mq().close(() => resolve()));
      await b.close();
    }
    admin.disconnect();
  });

  async function node(prefix: string, retainedStats?: RetainedLookupStats): Promise<RetainedCalls> {
    const backends = redisBackends({ url, prefix, ...(retainedStats ? { retainedStats } : {}) });
    opened.push(backends);
    return (await backends.persistence()) as unknown as RetainedCalls;
  }

  it("a tower's SUBSCRIBE gets its own retained messages and the directory, never another tower's, without a scan", async () => {
    const stats: RetainedLookupStats = { indexed: 0, scanned: 0 };
    const p = await node(uniquePrefix(), stats);
    for (const t of ['t1', 't2', 't3']) {
      await p.storeRetained(retain(`tenants/a/towers/${t}/policy`));
      await p.storeRetained(retain(`tenants/a/towers/${t}/policy/0`));
      await p.storeRetained(retain(`towers/${t}/status`));
    }
    await p.storeRetained(retain('tenants/b/towers/t1/policy'));
    await p.storeRetained(retain('directory/tok'));
    await p.storeRetained(retain('directory/tok/0'));
    expect(await topicsOf(p, towerFilters('t1'))).toEqual(['directory/tok', 'directory/tok/0', 'tenants/a/towers/t1/policy', 'tenants/a/towers/t1/policy/0', 'tenants/b/towers/t1/policy']);
    expect(await topicsOf(p, towerFilters('t2'))).toEqual(['directory/tok', 'directory/tok/0', 'tenants/a/towers/t2/policy', 'tenants/a/towers/t2/policy/0']);
    expect(stats).toEqual({ indexed: 2, scanned: 0 });
    // An exact topic, and the payload is what was stored.
    const got: Buffer[] = [];
    for await (const packet of p.createRetainedStreamCombi(['tenants/a/towers/t3/policy'])) got.push(packet.payload);
    expect(got.map(String)).toEqual(['tenants/a/towers/t3/policy']);
    // A service's fleet-wide filter still gets everything it matches (through the scan).
    expect(await topicsOf(p, ['tenants/+/towers/+/policy'])).toEqual(['tenants/a/towers/t1/policy', 'tenants/a/towers/t2/policy', 'tenants/a/towers/t3/policy', 'tenants/b/towers/t1/policy']);
    expect(stats).toEqual({ indexed: 3, scanned: 1 });
  });

  it("lets another process (a worker, on its own connection) list one document's retained parts, never another tower's or tenant's", async () => {
    const prefix = uniquePrefix();
    const p = await node(prefix);
    const keyPrefix = sessionKeyPrefix(prefix);
    if (admin.status === 'wait') await admin.connect();
    const head = 'tenants/a/towers/t1/policy';
    for (const t of [head, `${head}/0`, `${head}/1`, `${head}/2`, 'tenants/a/towers/t2/policy/5', 'tenants/b/towers/t1/policy/6', `${head}/0/deeper`, 'directory/tok/3', 'directory/tok2/1', 'directory/tok/3/x']) await p.storeRetained(retain(t));
    await p.storeRetained({ ...retain(`${head}/1`), payload: Buffer.alloc(0) });
    expect((await retainedTopicsUnder(admin, keyPrefix, head)).sort()).toEqual([`${head}/0`, `${head}/2`]);
    expect(await retainedTopicsUnder(admin, keyPrefix, 'directory/tok')).toEqual(['directory/tok/3']);
    expect(await retainedTopicsUnder(admin, keyPrefix, 'tenants/c/towers/t1/policy')).toEqual([]);
    await expect(retainedTopicsUnder(admin, keyPrefix, 'tenants/+/towers/t1/policy')).rejects.toThrow(/not a topic/);
    // A namespace no broker node has opened: no index to trust.
    await expect(retainedTopicsUnder(admin, sessionKeyPrefix(uniquePrefix()), head)).rejects.toThrow(/not built/);
  });

  it('lets a worker list every retained edge document of every tower and tenant, and nothing else, from another namespace never', async () => {
    const prefix = uniquePrefix();
    const p = await node(prefix);
    const keyPrefix = sessionKeyPrefix(prefix);
    if (admin.status === 'wait') await admin.connect();
    const documents = [
      'tenants/a/towers/t1/policy', 'tenants/a/towers/t1/policy/0', 'tenants/b/towers/t2/policy', 'tenants/b/towers/t2/policy/4',
      'tenants/c/policy', 'directory/tok', 'directory/tok/0', 'directory/tok2/1',
    ];
    const others = ['tenants/a/towers/t1/decisions', 'towers/t1/status', 'carriers/c/feeds/results', 'tenants/a/towers/t1/policy/0/deeper', 'directory/tok/3/x'];
    for (const t of [...documents, ...others, 'tenants/b/towers/t3/policy/1']) await p.storeRetained(retain(t));
    await p.storeRetained({ ...retain('tenants/b/towers/t3/policy/1'), payload: Buffer.alloc(0) });
    // Another deployment's namespace on the same Redis: never listed.
    const q = await node(uniquePrefix());
    await q.storeRetained(retain('tenants/z/towers/t1/policy'));
    expect((await retainedEdgeTopics(admin, keyPrefix)).sort()).toEqual([...documents].sort());
    await expect(retainedEdgeTopics(admin, sessionKeyPrefix(uniquePrefix()))).rejects.toThrow(/not built/);
  });

  it('an empty retained message deletes the message and its index entry; a new one comes back', async () => {
    const prefix = uniquePrefix();
    const p = await node(prefix);
    await p.storeRetained(retain('tenants/a/towers/t1/policy/0'));
    await p.storeRetained(retain('tenants/a/towers/t1/policy/0', ''));
    expect(await topicsOf(p, towerFilters('t1'))).toEqual([]);
    if (admin.status !== 'ready') await admin.connect();
    expect(await admin.smembers(`${prefix}mqtt:retained-index:tower:t1`)).toEqual([]);
    await p.storeRetained(retain('tenants/a/towers/t1/policy/0', 'v2'));
    expect(await topicsOf(p, towerFilters('t1'))).toEqual(['tenants/a/towers/t1/policy/0']);
  });

  it('finds messages retained before the index existed (indexed when a node opens), and drops members whose message is gone', async () => {
    const prefix = uniquePrefix();
    if (admin.status !== 'ready') await admin.connect();
    // As aedes-persistence-redis alone stored them: the hash field only.
    const packet = retain('tenants/a/towers/t9/policy');
    await admin.hset(`${prefix}mqtt:retained`, packet.topic, msgpack.encode(packet));
    // A member left behind with no message (a rebuild that raced a delete).
    await admin.sadd(`${prefix}mqtt:retained-index:tower:t9`, 'tenants/a/towers/t9/policy/7');
    const p = await node(prefix);
    expect(await topicsOf(p, towerFilters('t9'))).toEqual(['tenants/a/towers/t9/policy']);
    expect(await admin.smembers(`${prefix}mqtt:retained-index:tower:t9`)).toEqual(['tenants/a/towers/t9/policy']);
    // Indexed once per namespace: the next node to open does not read the hash again.
    expect(await admin.exists(`${prefix}mqtt:retained-index:built`)).toBe(1);
  });

  it('two nodes storing and clearing the same topics concurrently leave the index and the messages in step', async () => {
    const prefix = uniquePrefix();
    const a = await node(prefix);
    const b = await node(prefix);
    const topics = Array.from({ length: 20 }, (_, i) => `tenants/a/towers/t${i % 4}/policy/${i}`);
    await Promise.all(
      topics.flatMap((t, i) => [
        a.storeRetained(retain(t, 'a')),
        b.storeRetained(retain(t, i % 2 === 0 ? '' : 'b')),
        a.storeRetained(retain(t, i % 3 === 0 ? '' : 'a2')),
      ]),
    );
    if (admin.status !== 'ready') await admin.connect();
    const fields = (await admin.hkeys(`${prefix}mqtt:retained`)).sort();
    const members: string[] = [];
    for (let t = 0; t < 4; t++) members.push(...(await admin.smembers(`${prefix}mqtt:retained-index:tower:t${t}`)));
    expect(members.sort()).toEqual(fields);
    const seen: string[] = [];
    for (let t = 0; t < 4; t++) seen.push(...(await topicsOf(b, towerFilters(`t${t}`))));
    expect(seen.sort()).toEqual(fields);
  });
});
