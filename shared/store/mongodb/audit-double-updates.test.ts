/**
 * Updates a MongoDB server refuses must be refused by the boundary double too, or the contract
 * suite over the double passes adapter code that fails on every real server. mingo (the double's
 * update engine) applies them: $setOnInsert and $set of one field (the server: code 40,
 * ConflictingUpdateOperators, whether or not the upsert inserts), $inc of a null or a string and
 * $inc by a non-number (the server: code 14, TypeMismatch).
 */
import { describe, expect, it } from 'vitest';
import type { Document } from './db-like.js';
import { MemoryMongo } from './memory-mongo-double.js';

interface Doc extends Document {
  _id: string;
  n?: number | string | null;
  label?: string;
  nested?: { a?: number };
}

const failure = async (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => null,
    (e: unknown) => e,
  );

describe('in-memory MongoDB double: updates a server refuses', () => {
  it('refuses one path changed by two operators, as an insert and as an update (code 40)', async () => {
    const coll = new MemoryMongo().db('t').collection<Doc>('things');
    const conflicting = () => coll.updateOne({ _id: 'k' }, { $set: { label: 'set' }, $setOnInsert: { label: 'insert' } }, { upsert: true });
    expect(await failure(conflicting())).toMatchObject({ code: 40 });
    await coll.insertOne({ _id: 'k', n: 1 });
    expect(await failure(conflicting())).toMatchObject({ code: 40 });
    expect(await failure(coll.updateOne({ _id: 'k' }, { $set: { nested: { a: 1 } }, $inc: { 'nested.a': 1 } }))).toMatchObject({ code: 40 });
    expect(await coll.findOne({ _id: 'k' })).toEqual({ _id: 'k', n: 1 });
  });

  it('refuses $inc of a null or a string field, and $inc by a non-number (code 14)', async () => {
    const coll = new MemoryMongo().db('t').collection<Doc>('things');
    await coll.insertMany([
      { _id: 'null', n: null },
      { _id: 'text', n: 'x' },
      { _id: 'num', n: 1 },
    ]);
    expect(await failure(coll.updateOne({ _id: 'null' }, { $inc: { n: 1 } }))).toMatchObject({ code: 14 });
    expect(await failure(coll.updateOne({ _id: 'text' }, { $inc: { n: 1 } }))).toMatchObject({ code: 14 });
    expect(await failure(coll.updateOne({ _id: 'num' }, { $inc: { n: null as unknown as number } }))).toMatchObject({ code: 14 });
    // What a server accepts still works: a number, and a missing field starting from 0.
    await coll.updateOne({ _id: 'num' }, { $inc: { n: 2, 'nested.a': 3 } });
    expect(await coll.findOne({ _id: 'num' })).toEqual({ _id: 'num', n: 3, nested: { a: 3 } });
  });
});
