/**
 * (l) retained lookups in distributed mode: what one tower's SUBSCRIBE costs the Redis session
 * store once a fleet's bundles are retained. A real redis-server holds the retained messages of
 * `towers` towers (a policy head and `parts` parts each, as the bundle publisher retains them, plus
 * a directory); then `lookups` towers' SUBSCRIBE filters are answered by aedes-persistence-redis
 * alone (the baseline: a scan of the whole retained hash) and by our store (retained-redis.ts),
 * on the same data in the same run. Loopback only; bounded by its counts.
 */
import { Redis } from 'ioredis';
import redisPersistence from 'aedes-persistence-redis';
import msgpack from 'msgpack-lite';
import { redisBackends } from '../../broker/backends-redis.js';
import { filters } from '../../shared/mqtt/topics.js';
import { startRedisServer } from './redis-process.js';

export interface RetainedBenchOptions {
  towers: number;
  parts: number;
  lookups: number;
  log: (s: string) => void;
}

export interface RetainedBenchResult {
  towers: number;
  retained_messages: number;
  lookups: number;
  /** Per tower SUBSCRIBE, ms (mean over `lookups`). */
  scan_ms: number;
  indexed_ms: number;
  /** Messages each lookup returned (the same for both). */
  messages_per_lookup: number;
  speedup: number;
}

interface RetainedStreams {
  createRetainedStreamCombi(patterns: string[]): AsyncIterable<unknown>;
}

const towerFilters = (tower: string) => [filters.towerDecisions(tower), filters.towerCommands(tower), filters.towerPolicies(tower), filters.directory];

export async function benchRetained(opts: RetainedBenchOptions): Promise<RetainedBenchResult> {
  const redis = await startRedisServer();
  const prefix = 'bench:';
  const admin = new Redis(redis.url, { keyPrefix: `${prefix}mqtt:` });
  const libConn = new Redis(redis.url, { keyPrefix: `${prefix}mqtt:` });
  const backends = redisBackends({ url: redis.url, prefix });
  try {
    const payload = Buffer.alloc(2048, 7);
    let stored = 0;
    const store = admin.pipeline();
    const put = (topic: string) => {
      store.hset('retained', topic, msgpack.encode({ cmd: 'publish', topic, payload, qos: 1, retain: true, brokerId: 'bench', brokerCounter: stored }));
      stored++;
    };
    for (let t = 0; t < opts.towers; t++) {
      put(`tenants/acme/towers/tower-${t}/policy`);
      for (let p = 0; p < opts.parts; p++) put(`tenants/acme/towers/tower-${t}/policy/${p}`);
    }
    for (let p = 0; p < 8; p++) put(`directory/acme-token/${p}`);
    await store.exec();
    // Our store indexes what the hash holds when it opens (as after an upgrade).
    const ours = (await backends.persistence()) as unknown as RetainedStreams;
    const lib = redisPersistence({ conn: libConn }) as unknown as { asyncPersistence: RetainedStreams };

    const run = async (p: RetainedStreams, lookups: number): Promise<{ ms: number; messages: number }> => {
      let messages = 0;
      const t0 = performance.now();
      for (let i = 0; i < lookups; i++) {
        const tower = `tower-${Math.floor((i * opts.towers) / lookups)}`;
        for await (const _ of p.createRetainedStreamCombi(towerFilters(tower))) messages++;
      }
      return { ms: (performance.now() - t0) / lookups, messages: messages / lookups };
    };
    // One unreported lookup each (connections, scripts).
    await run(lib.asyncPersistence, 1);
    await run(ours, 1);
    const scan = await run(lib.asyncPersistence, opts.lookups);
    const indexed = await run(ours, opts.lookups);
    if (scan.messages !== indexed.messages) throw new Error(`retained bench: the scan found ${scan.messages} messages per lookup, the index ${indexed.messages}`);
    opts.log(`  ${opts.towers} towers, ${stored} retained: scan ${scan.ms.toFixed(2)} ms, indexed ${indexed.ms.toFixed(2)} ms per tower SUBSCRIBE`);
    return {
      towers: opts.towers,
      retained_messages: stored,
      lookups: opts.lookups,
      scan_ms: scan.ms,
      indexed_ms: indexed.ms,
      messages_per_lookup: indexed.messages,
      speedup: scan.ms / indexed.ms,
    };
  } finally {
    await new Promise<void>((resolve) => backends.mq().close(() => resolve()));
    await backends.close();
    admin.disconnect();
    libConn.disconnect();
    await redis.stop();
  }
}

export function printRetained(r: RetainedBenchResult, log: (s: string) => void, fmt: (n: number, d?: number) => string): void {
  log(`  (l) retained lookup per tower SUBSCRIBE, Redis sessions, ${fmt(r.towers)} towers' bundles (${fmt(r.retained_messages)} retained messages)`);
  log(`      aedes-persistence-redis scan ${fmt(r.scan_ms, 2)} ms   indexed ${fmt(r.indexed_ms, 2)} ms   (${fmt(r.speedup, 0)}×; ${fmt(r.messages_per_lookup)} messages each, ${fmt(r.lookups)} lookups)   a fleet reconnecting: ${fmt((r.scan_ms * r.towers) / 1000, 1)} s vs ${fmt((r.indexed_ms * r.towers) / 1000, 1)} s of lookups`);
}
