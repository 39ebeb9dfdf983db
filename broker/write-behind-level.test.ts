/**
 * The session store's write batching over a real LevelDB (classic-level) in a temp dir: writes of
 * one turn become one batch, reads see every write issued before them, a write's promise means
 * it is in LevelDB (a session-queue write's: `durable(mark)`), and a failed batch fails its writes. The aedes-persistence abstract suite
 * (persistence-contract.test.ts) runs the LevelDB backend through it as well.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WriteBehindLevel } from './write-behind-level.js';

let dir: string;
let db: ClassicLevel<string, Buffer>;

const open = async (): Promise<ClassicLevel<string, Buffer>> => {
  const d = new ClassicLevel<string, Buffer>(join(dir, 'db'), { valueEncoding: 'buffer' });
  await d.open();
  return d;
};
const b = (s: string): Buffer => Buffer.from(s);

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-wb-'));
  db = await open();
});

afterEach(async () => {
  if (db.status === 'open') await db.close();
  await rm(dir, { recursive: true, force: true });
});

describe('WriteBehindLevel', () => {
  it('writes what one turn issues as one batch, and a resolved write is in LevelDB', async () => {
    const wb = new WriteBehindLevel(db);
    const f = wb.facade();
    const writes = [f.put('a', b('1')), f.put('b', b('2')), f.del('a'), f.batch([{ type: 'put', key: 'c', value: b('3') }])];
    const chained = f.batch().put('d', b('4')).del('b');
    writes.push(chained.write());
    await Promise.all(writes);
    expect(wb.stats).toEqual({ batches: 1, writes: 6, failedEarly: 0 });
    await f.close();
    db = await open();
    expect(await db.keys().all()).toEqual(['c', 'd']);
  });

  it('asks LevelDB to fsync each batch only when built for power durability', async () => {
    const seen: unknown[] = [];
    const batch = db.batch.bind(db) as (ops: unknown, opts?: unknown) => Promise<void>;
    (db as unknown as { batch: (ops: unknown, opts?: unknown) => Promise<void> }).batch = (ops, opts) => {
      seen.push(opts);
      return batch(ops, opts);
    };
    await new WriteBehindLevel(db).facade().put('a', b('1'));
    await new WriteBehindLevel(db, { sync: true }).facade().put('b', b('2'));
    expect(seen).toEqual([{ sync: false }, { sync: true }]);
    expect(await db.get('b')).toEqual(b('2'));
  });

  it('reads see every write issued before them, also before it is written', async () => {
    const wb = new WriteBehindLevel(db);
    const f = wb.facade();
    await f.put('k1', b('old'));
    void f.put('k1', b('new'));
    void f.put('k2', b('x'));
    void f.del('k2');
    expect(String(await f.get('k1'))).toBe('new');
    expect(await f.get('k2')).toBeUndefined();
    void f.put('k3', b('y'));
    // An iteration starts after the writes issued before it.
    const values: string[] = [];
    for await (const v of f.values()) values.push(String(v));
    expect(values).toEqual(['new', 'y']);
  });

  it('answers reads of the small session-queue entries it wrote lately from memory, and forgets what a clear removes', async () => {
    const wb = new WriteBehindLevel(db);
    const f = wb.facade();
    const big = Buffer.alloc(64 * 1024, 1);
    await Promise.all([
      f.put('outgoing-id:t1:1', b('a')),
      f.put('outgoing-id:t1:2', b('b')),
      f.put('outgoing:t2:x:1', b('c')),
      f.put('outgoing:t2:x:2', big),
      f.put('retained:towers/t2/status', b('online')),
    ]);
    await f.clear({ gte: 'outgoing-id:t1:', lt: 'outgoing-id:t1;' });
    expect(await f.get('outgoing-id:t1:1')).toBeUndefined();
    expect(await db.get('outgoing-id:t1:2')).toBeUndefined();
    // With LevelDB closed underneath, only a small session-queue entry is answered (from memory);
    // a large value, a retained message or a key never written goes to LevelDB.
    await db.close();
    expect(await f.get('outgoing:t2:x:1')).toEqual(b('c'));
    await expect(f.get('outgoing:t2:x:2')).rejects.toThrow();
    await expect(f.get('retained:towers/t2/status')).rejects.toThrow();
    await expect(f.get('never-written')).rejects.toThrow();
  });

  it('a flush waits for the writes issued before it, not for later ones', async () => {
    const wb = new WriteBehindLevel(db);
    const f = wb.facade();
    let later = 0;
    void f.put('first', b('1'));
    const flushed = wb.flush();
    // Keep writing while the flush is pending: it must still resolve.
    const more = Array.from({ length: 50 }, (_, i) => f.put(`later-${i}`, b('x')).then(() => later++));
    await flushed;
    expect(await db.get('first')).toEqual(b('1'));
    await Promise.all(more);
    expect(later).toBe(50);
    expect(wb.stats.batches).toBeGreaterThanOrEqual(2);
  });

  it('splits a large queue into batches of about 256 writes, never splitting one caller’s batch', async () => {
    const wb = new WriteBehindLevel(db);
    const f = wb.facade();
    const singles = Array.from({ length: 250 }, (_, i) => f.put(`single-${String(i).padStart(3, '0')}`, b('x')));
    // One caller's batch of 100 straddles the 256th write: it goes whole into the first batch.
    const group = f.batch(Array.from({ length: 100 }, (_, i) => ({ type: 'put' as const, key: `group-${i}`, value: b('y') })));
    const rest = Array.from({ length: 300 }, (_, i) => f.put(`rest-${i}`, b('z')));
    await Promise.all([...singles, group, ...rest]);
    expect(wb.stats).toEqual({ batches: 3, writes: 650, failedEarly: 0 });
    expect(await db.keys({ gte: 'group-', lt: 'group.' }).all()).toHaveLength(100);
  });

  it('answers session-queue writes once issued, and durable(mark) only once they are in LevelDB', async () => {
    const wb = new WriteBehindLevel(db);
    const f = wb.facade();
    const mark = wb.mark();
    // A queued message, its in-flight record, then its clear: each answered before any batch.
    await f.put('outgoing:t1:b:1', b('m'));
    await f.batch([{ type: 'put', key: 'outgoing-id:t1:7', value: b('m') }]);
    expect(wb.stats.batches).toBe(0);
    expect(await db.get('outgoing:t1:b:1')).toBeUndefined();
    expect(String(await f.get('outgoing-id:t1:7'))).toBe('m');
    // Anything else still waits for its batch; a mixed group counts as anything else.
    let subscribed = false;
    const sub = f.batch([{ type: 'put', key: 'outgoing:t1:b:2', value: b('n') }, { type: 'put', key: 'sub:t1', value: b('s') }]).then(() => (subscribed = true));
    await Promise.resolve();
    expect(subscribed).toBe(false);
    await wb.durable(mark);
    expect(await db.get('outgoing:t1:b:1')).toEqual(b('m'));
    expect(await db.get('outgoing-id:t1:7')).toEqual(b('m'));
    await sub;
    await f.batch().del('outgoing:t1:b:1').del('outgoing-id:t1:7').write();
    expect(await db.get('outgoing-id:t1:7')).toEqual(b('m'));
    await wb.durable(mark);
    expect(await db.get('outgoing-id:t1:7')).toBeUndefined();
  });

  it('a failed early-answered write fails durable() for marks taken before it, not after', async () => {
    const wb = new WriteBehindLevel(db);
    const f = wb.facade();
    const before = wb.mark();
    await db.close();
    await f.put('outgoing:t1:b:1', b('m'));
    await expect(wb.durable(before)).rejects.toThrow('session store write failed');
    expect(wb.stats.failedEarly).toBe(1);
    // Nothing pending past it: whatever began afterwards is not blamed for it.
    await expect(wb.durable(wb.mark())).resolves.toBeUndefined();
    db = await open();
    expect(await new WriteBehindLevel(db).facade().get('outgoing:t1:b:1')).toBeUndefined();
  });

  it('a failed batch fails its writes, and reads go back to what LevelDB holds', async () => {
    const wb = new WriteBehindLevel(db);
    const f = wb.facade();
    await f.put('kept', b('1'));
    await db.close();
    await expect(f.put('lost', b('2'))).rejects.toThrow();
    db = await open();
    const again = new WriteBehindLevel(db).facade();
    expect(await again.get('lost')).toBeUndefined();
    expect(await again.get('kept')).toEqual(b('1'));
  });
});
