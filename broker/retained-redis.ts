/**
 * Retained-message lookups for the Redis session store (distributed mode) that read what a
 * SUBSCRIBE can match, not every retained message.
 *
 * Why: aedes-persistence-redis 12 keeps retained messages in one hash (`retained`: topic →
 * msgpack of the packet) and answers `createRetainedStreamCombi(filters)` by HSCANning it under
 * the filters' longest common literal prefix. A tower subscribes to its decisions, commands,
 * policy bundles (`tenants/+/towers/<tower>/policy/#`) and the directory (`directory/#`) in one
 * SUBSCRIBE, whose common prefix is empty: every tower connecting read and decoded every retained
 * message of the fleet — every tower's bundle parts — so N towers reconnecting cost O(N²) in Redis.
 *
 * What this adds, in the same Redis and under the same key prefix:
 * - A set per bucket of retained topics (`retained-index:<bucket>`): a tower's own topics
 *   (`tenants/<t>/towers/<tower>/…`) are bucket `tower:<tower>`, every other topic is bucket
 *   `level:<first level>` (`directory`, `towers`, `tenants` for tenant-wide topics …).
 * - `storeRetained` writes the hash field and the set member in one MULTI (and deletes both in
 *   one), so under any interleaving of broker nodes a stored message is in its bucket. The hash
 *   keeps aedes-persistence-redis' format: what it wrote before this index is still read.
 * - A lookup reads the buckets the filters can reach (`bucketsOf`), matches the members with
 *   MQTT's rules (RetainedIndex, the same matcher the LevelDB store uses) and reads only the
 *   matching fields (HMGET). A filter that could reach every tower's bucket (`#`, `+/…`,
 *   `tenants/+/towers/+/…`: services, never a tower) falls back to the library's scan.
 * - The first node to open a namespace without the index indexes the hash's existing fields
 *   (one HSCAN, which also returns the values: O(retained bytes) once) and then sets
 *   `retained-index:built`; later starts skip it. So messages retained before this release are
 *   found. Not found: a message retained by a node of the previous release AFTER that, during a
 *   rolling upgrade, until it is retained again (bundles are republished on every policy change);
 *   deleting the marker key makes the next node to start index the hash again. A member whose
 *   field is gone (a rebuild racing a delete) is skipped and removed, atomically with a check
 *   that the field is still absent.
 */
import type { Redis } from 'ioredis';
import msgpack from 'msgpack-lite';
import type { SessionPersistence } from './backends.js';
import { edgeDocumentOf } from '../shared/mqtt/topics.js';
import { RetainedIndex } from './retained-index.js';

/** aedes-persistence-redis' hash of retained messages (asyncPersistence.js RETAINEDKEY). */
const RETAINED = 'retained';
const INDEX = 'retained-index:';
/** Set once the hash's fields written before the index existed are indexed. */
const BUILT = 'retained-index:built';
/** Fields per HMGET, members per SADD while rebuilding. */
const CHUNK = 200;
const PRUNE_IF_ABSENT = `if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return redis.call('SREM', KEYS[2], ARGV[1]) end return 0`;

/**
 * The retained topics one level below `head` (`<head>/+`: a document's parts), read from the
 * index by another process of the deployment (a worker) on its own connection: `keyPrefix` is
 * the session store's (backends-redis.ts sessionKeyPrefix). Members of one bucket only, so a
 * tower's document never lists another tower's topics: a tower's bucket (its own topics, small)
 * is read whole; a shared one (`level:directory`: every tenant's slices) is scanned with a MATCH
 * on the head, so only that document's topics cross the network. Throws while the index is not
 * built (the first broker node of a namespace builds it at start): messages retained before it
 * existed could be missed.
 */
export async function retainedTopicsUnder(conn: Redis, keyPrefix: string, head: string): Promise<string[]> {
  if (head.includes('+') || head.includes('#')) throw new Error(`not a topic: ${JSON.stringify(head)}`);
  await requireIndexBuilt(conn, keyPrefix);
  const bucket = bucketOf(`${head}/0`);
  const key = keyPrefix + INDEX + bucket;
  let members: string[];
  if (bucket.startsWith('tower:')) {
    members = await conn.smembers(key);
  } else {
    members = [];
    const match = `${globEscape(head)}/*`;
    let cursor = '0';
    do {
      const [next, page] = await conn.sscan(key, cursor, 'MATCH', match, 'COUNT', 1000);
      members.push(...page);
      cursor = next;
    } while (cursor !== '0');
  }
  return [...new Set(members)].filter((t) => t.startsWith(`${head}/`) && !t.slice(head.length + 1).includes('/'));
}

/**
 * Every retained edge document (filters.edgeDocuments: bundles per tower, legacy bundles,
 * directory slices, their parts), read from the index like `retainedTopicsUnder`, on a worker's
 * own connection: the towers' buckets (found with SCAN over the index keys) and the `tenants` and
 * `directory` buckets. Read once by a bundle publisher after it takes over, to clear the documents
 * of tenants that are gone. Throws while the index is not built.
 */
export async function retainedEdgeTopics(conn: Redis, keyPrefix: string): Promise<string[]> {
  await requireIndexBuilt(conn, keyPrefix);
  const keys = [keyPrefix + INDEX + 'level:tenants', keyPrefix + INDEX + 'level:directory'];
  const towerKeys = `${globEscape(keyPrefix + INDEX + 'tower:')}*`;
  let cursor = '0';
  do {
    const [next, page] = await conn.scan(cursor, 'MATCH', towerKeys, 'COUNT', 1000);
    keys.push(...page);
    cursor = next;
  } while (cursor !== '0');
  const out = new Set<string>();
  for (let i = 0; i < keys.length; i += CHUNK) {
    const reads = conn.pipeline();
    for (const key of keys.slice(i, i + CHUNK)) reads.smembers(key);
    for (const [err, members] of (await reads.exec()) ?? []) {
      if (err) throw err;
      for (const topic of members as string[]) if (edgeDocumentOf(topic)) out.add(topic);
    }
  }
  return [...out];
}

/** Throws while no broker node has indexed the namespace: messages retained before could be missed. */
async function requireIndexBuilt(conn: Redis, keyPrefix: string): Promise<void> {
  if ((await conn.exists(keyPrefix + BUILT)) === 0) throw new Error('the retained index is not built yet (no broker node has started on this Redis namespace)');
}

/** `s` as a literal in a Redis MATCH pattern. */
function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/** The bucket a retained topic is indexed under. */
export function bucketOf(topic: string): string {
  const l = topic.split('/');
  if (l[0] === 'tenants' && l[2] === 'towers' && l.length >= 4) return `tower:${l[3]}`;
  return `level:${l[0]}`;
}

/** Every bucket holding a topic `filter` can match, or null when that could be any tower's. */
export function bucketsOf(filter: string): string[] | null {
  const l = filter.split('/');
  const first = l[0]!;
  if (first === '#' || first === '+') return null;
  if (first !== 'tenants') return [`level:${first}`];
  // Could it match a tower's topic, tenants/<t>/towers/<tower>/…?
  const wildUpTo3 = l.slice(1, 4).includes('#');
  if (wildUpTo3) return null;
  if (l.length < 4 || (l[2] !== 'towers' && l[2] !== '+')) return ['level:tenants'];
  if (l[3] === '+') return null;
  return [`tower:${l[3]}`, 'level:tenants'];
}

interface RetainedOps {
  storeRetained(packet: { topic: string; payload: Buffer }): Promise<void>;
  createRetainedStreamCombi(patterns: string[]): AsyncIterable<unknown>;
  createRetainedStream(pattern: string): AsyncIterable<unknown>;
}

export interface RetainedLookupStats {
  /** Lookups answered from the buckets. */
  indexed: number;
  /** Lookups that fell back to the library's scan of the whole hash. */
  scanned: number;
}

/**
 * Installs the index on an aedes-persistence-redis instance whose connection is `conn` (the same
 * key prefix) and indexes what the hash already holds. Returns the persistence.
 */
export async function indexRetainedRedis(
  persistence: SessionPersistence,
  conn: Redis,
  stats: RetainedLookupStats = { indexed: 0, scanned: 0 },
): Promise<SessionPersistence> {
  await indexExisting(conn);
  const ops = (persistence as unknown as { asyncPersistence: RetainedOps }).asyncPersistence;
  const scan = ops.createRetainedStreamCombi.bind(ops);

  ops.storeRetained = async (packet) => {
    const bucket = INDEX + bucketOf(packet.topic);
    const tx = conn.multi();
    if (packet.payload.length === 0) tx.hdel(RETAINED, packet.topic).srem(bucket, packet.topic);
    else tx.hset(RETAINED, packet.topic, msgpack.encode(packet)).sadd(bucket, packet.topic);
    const results = await tx.exec();
    const failed = results?.find(([err]) => err !== null)?.[0];
    if (!results || failed) throw new Error(`retained message not stored: ${packet.topic}`, { cause: failed ?? undefined });
  };

  const lookup = (patterns: string[]): AsyncIterable<unknown> => {
    const buckets = new Set<string>();
    for (const p of patterns) {
      const reach = bucketsOf(p);
      if (reach === null) {
        stats.scanned++;
        return scan(patterns);
      }
      for (const b of reach) buckets.add(b);
    }
    stats.indexed++;
    return matching([...buckets], patterns);
  };

  async function* matching(buckets: string[], patterns: string[]): AsyncGenerator<unknown> {
    const reads = conn.pipeline();
    for (const b of buckets) reads.smembers(INDEX + b);
    const index = new RetainedIndex();
    for (const [err, members] of (await reads.exec()) ?? []) {
      if (err) throw err;
      for (const topic of members as string[]) index.add(topic);
    }
    const topics = index.match(patterns);
    for (let i = 0; i < topics.length; i += CHUNK) {
      const chunk = topics.slice(i, i + CHUNK);
      const values = await conn.hmgetBuffer(RETAINED, ...chunk);
      for (const [j, value] of values.entries()) {
        if (value) {
          yield msgpack.decode(value);
          continue;
        }
        await conn.eval(PRUNE_IF_ABSENT, 2, RETAINED, INDEX + bucketOf(chunk[j]!), chunk[j]!);
      }
    }
  }

  ops.createRetainedStreamCombi = lookup;
  ops.createRetainedStream = (pattern) => lookup([pattern]);
  return persistence;
}

/** Adds every field of the retained hash to its bucket, once per namespace (idempotent). */
async function indexExisting(conn: Redis): Promise<void> {
  if ((await conn.exists(BUILT)) === 1) return;
  const byBucket = new Map<string, string[]>();
  const flush = async (): Promise<void> => {
    if (byBucket.size === 0) return;
    const tx = conn.pipeline();
    for (const [bucket, topics] of byBucket) tx.sadd(INDEX + bucket, ...topics);
    byBucket.clear();
    for (const [err] of (await tx.exec()) ?? []) if (err) throw err;
  };
  let pending = 0;
  let cursor = '0';
  do {
    // Field names only matter; HSCAN returns values too (Redis 7.0 has no NOVALUES).
    const [next, entries] = await conn.hscanBuffer(RETAINED, cursor, 'COUNT', CHUNK);
    cursor = next.toString();
    for (let i = 0; i < entries.length; i += 2) {
      const topic = entries[i]!.toString();
      const bucket = bucketOf(topic);
      let list = byBucket.get(bucket);
      if (!list) byBucket.set(bucket, (list = []));
      list.push(topic);
      if (++pending >= CHUNK) {
        pending = 0;
        await flush();
      }
    }
  } while (cursor !== '0');
  await flush();
  await conn.set(BUILT, String(Date.now()));
}
