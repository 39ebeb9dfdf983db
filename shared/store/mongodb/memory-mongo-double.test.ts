/**
 * The boundary double's own behaviour, where the adapter relies on it matching a server:
 * unique indexes and E11000, unordered bulk inserts, transactions that commit or leave nothing,
 * aborts on write errors, sessions, upserts and MongoDB's null ordering (mingo's).
 */
import { describe, expect, it } from 'vitest';
import { isDuplicateKeyError, type Document } from './db-like.js';
import { MemoryMongo } from './memory-mongo-double.js';

interface Doc extends Document {
  _id: string;
  tenant_id: string | null;
  key?: string;
  n?: number | null;
}

const setup = async () => {
  const server = new MemoryMongo();
  const db = server.db('t');
  const coll = db.collection<Doc>('things');
  await coll.createIndexes([{ key: { tenant_id: 1, key: 1 }, unique: true, partialFilterExpression: { key: { $exists: true } } }]);
  return { server, db, coll };
};

const failure = async (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => null,
    (e: unknown) => e,
  );

describe('in-memory MongoDB boundary double', () => {
  it('raises E11000 for a repeated _id or unique key, honouring partial indexes and null tenants', async () => {
    const { coll } = await setup();
    await coll.insertOne({ _id: 'a', tenant_id: 't1', key: 'x' });
    await coll.insertOne({ _id: 'b', tenant_id: 't2', key: 'x' });
    await coll.insertOne({ _id: 'c', tenant_id: 't1' });
    await coll.insertOne({ _id: 'd', tenant_id: 't1' });
    await coll.insertOne({ _id: 'e', tenant_id: null, key: 'x' });
    for (const doc of [{ _id: 'a', tenant_id: 't9' }, { _id: 'z', tenant_id: 't1', key: 'x' }, { _id: 'y', tenant_id: null, key: 'x' }]) {
      const err = await failure(coll.insertOne(doc));
      expect(isDuplicateKeyError(err), JSON.stringify(doc)).toBe(true);
      expect(err).toMatchObject({ code: 11000 });
    }
    expect(isDuplicateKeyError(await failure(coll.updateOne({ _id: 'c' }, { $set: { key: 'x' } })))).toBe(true);
    expect(await coll.countDocuments({})).toBe(5);
  });

  it('inserts the rest of an unordered batch and reports each duplicate; an ordered one stops', async () => {
    const { coll } = await setup();
    await coll.insertOne({ _id: 'b', tenant_id: 't' });
    const docs = ['a', 'b', 'c', 'b', 'd'].map((_id) => ({ _id, tenant_id: 't' }));
    const err = await failure(coll.insertMany(docs, { ordered: false }));
    expect(err).toMatchObject({ code: 11000, writeErrors: [{ index: 1, code: 11000 }, { index: 3, code: 11000 }] });
    expect(isDuplicateKeyError(err)).toBe(true);
    expect((await coll.find({}, { sort: { _id: 1 } }).toArray()).map((d) => d._id)).toEqual(['a', 'b', 'c', 'd']);
    await failure(coll.insertMany([{ _id: 'e', tenant_id: 't' }, { _id: 'a', tenant_id: 't' }, { _id: 'f', tenant_id: 't' }]));
    expect(await coll.countDocuments({ _id: { $in: ['e', 'f'] } })).toBe(1);
    expect(isDuplicateKeyError(Object.assign(new Error('x'), { code: 11000, writeErrors: [{ code: 11000 }, { code: 121 }] }))).toBe(false);
  });

  it('commits a transaction whole, or leaves nothing when it throws', async () => {
    const { db, coll } = await setup();
    const session = db.client.startSession();
    await session.withTransaction(async (s) => {
      await coll.insertOne({ _id: 'a', tenant_id: 't' }, { session: s });
      await coll.updateOne({ _id: 'a' }, { $set: { n: 1 } }, { session: s });
      expect(await coll.findOne({ _id: 'a' }, { session: s })).toMatchObject({ n: 1 });
    });
    await expect(
      session.withTransaction(async (s) => {
        await coll.insertOne({ _id: 'b', tenant_id: 't' }, { session: s });
        await coll.deleteOne({ _id: 'a' }, { session: s });
        throw new Error('rollback');
      }),
    ).rejects.toThrow('rollback');
    expect((await coll.find({}).toArray()).map((d) => [d._id, d.n])).toEqual([['a', 1]]);
    await session.endSession();
  });

  it('aborts a transaction on a write error even when the callback swallows it, as a server does', async () => {
    const { db, coll } = await setup();
    await coll.insertOne({ _id: 'a', tenant_id: 't' });
    const session = db.client.startSession();
    const err = await failure(
      session.withTransaction(async (s) => {
        await coll.insertOne({ _id: 'b', tenant_id: 't' }, { session: s });
        await coll.insertOne({ _id: 'a', tenant_id: 't' }, { session: s }).catch(() => undefined);
        await coll.insertOne({ _id: 'c', tenant_id: 't' }, { session: s });
      }),
    );
    expect(isDuplicateKeyError(err) || (err as { code?: number }).code === 251).toBe(true);
    expect(await coll.countDocuments({})).toBe(1);
  });

  it('refuses an operation inside a transaction that forgot its session', async () => {
    const { db, coll } = await setup();
    const session = db.client.startSession();
    await expect(session.withTransaction(async () => coll.findOne({ _id: 'a' }))).rejects.toThrow(/without its session/);
  });

  it('seeds an upsert from the filter’s equality fields and applies $setOnInsert only on insert', async () => {
    const { coll } = await setup();
    const bump = () =>
      coll.updateOne({ _id: 'k', tenant_id: 't' }, { $inc: { n: 2 }, $setOnInsert: { key: 'first' } }, { upsert: true });
    expect(await bump()).toMatchObject({ upsertedCount: 1 });
    expect(await bump()).toMatchObject({ matchedCount: 1, upsertedCount: 0 });
    expect(await coll.findOne({ _id: 'k' })).toEqual({ _id: 'k', tenant_id: 't', n: 4, key: 'first' });
  });

  it('orders null below values and compares within a type only', async () => {
    const { coll } = await setup();
    await coll.insertMany(
      [
        { _id: 'a', tenant_id: 't', n: 5 },
        { _id: 'b', tenant_id: 't', n: null },
        { _id: 'c', tenant_id: 't', n: 3 },
      ],
    );
    expect((await coll.find({}, { sort: { n: 1, _id: 1 } }).toArray()).map((d) => d._id)).toEqual(['b', 'c', 'a']);
    expect((await coll.find({}, { sort: { n: -1, _id: -1 } }).toArray()).map((d) => d._id)).toEqual(['a', 'c', 'b']);
    expect((await coll.find({ n: { $lt: 5 } }).toArray()).map((d) => d._id)).toEqual(['c']);
    expect((await coll.find({}, { sort: { _id: -1 }, limit: 2 }).toArray()).map((d) => d._id)).toEqual(['c', 'b']);
  });

  it('hands out copies: changing a returned document changes nothing stored', async () => {
    const { coll } = await setup();
    await coll.insertOne({ _id: 'a', tenant_id: 't', n: 1 });
    const doc = await coll.findOne({ _id: 'a' });
    if (doc) doc.n = 99;
    expect(await coll.findOne({ _id: 'a' })).toMatchObject({ n: 1 });
  });
});
