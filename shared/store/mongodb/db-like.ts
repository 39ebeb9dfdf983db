/**
 * The part of the official driver's API the MongoDB adapter uses, and nothing more. The real
 * `Db` satisfies MongoDbLike structurally (mongo-store.ts assigns one to it, so tsc checks it);
 * the in-memory boundary double (memory-db.ts) implements exactly this surface. Keeping it small
 * keeps the double honest: anything the adapter needs beyond it must be added here first.
 */
import type { Document, Filter, IndexDescription, OptionalUnlessRequiredId, Sort, UpdateFilter, WithId } from 'mongodb';

export type { Document, Filter, Sort, UpdateFilter, WithId };

export interface SessionLike {
  /** Runs `fn` in a transaction, retrying it on transient errors; the callback must rethrow. */
  withTransaction<R>(fn: (session: SessionLike) => Promise<R>): Promise<R>;
  endSession(): Promise<void>;
}

export interface OpOptions {
  session?: SessionLike;
}

export interface FindOptionsLike extends OpOptions {
  sort?: Sort;
  limit?: number;
}

export interface CursorLike<T> {
  toArray(): Promise<T[]>;
}

export interface UpdateResultLike {
  matchedCount: number;
  modifiedCount: number;
  upsertedCount: number;
}

export interface CollectionLike<T extends Document> {
  insertOne(doc: OptionalUnlessRequiredId<T>, options?: OpOptions): Promise<unknown>;
  insertMany(
    docs: ReadonlyArray<OptionalUnlessRequiredId<T>>,
    options?: OpOptions & { ordered?: boolean },
  ): Promise<{ insertedCount: number }>;
  findOne(filter: Filter<T>, options?: FindOptionsLike): Promise<WithId<T> | null>;
  find(filter: Filter<T>, options?: FindOptionsLike): CursorLike<WithId<T>>;
  updateOne(filter: Filter<T>, update: UpdateFilter<T>, options?: OpOptions & { upsert?: boolean }): Promise<UpdateResultLike>;
  updateMany(filter: Filter<T>, update: UpdateFilter<T>, options?: OpOptions): Promise<UpdateResultLike>;
  findOneAndUpdate(
    filter: Filter<T>,
    update: UpdateFilter<T>,
    options: OpOptions & { returnDocument: 'before' | 'after' },
  ): Promise<WithId<T> | null>;
  deleteOne(filter: Filter<T>, options?: OpOptions): Promise<{ deletedCount: number }>;
  deleteMany(filter: Filter<T>, options?: OpOptions): Promise<{ deletedCount: number }>;
  countDocuments(filter: Filter<T>, options?: OpOptions): Promise<number>;
  createIndexes(specs: IndexDescription[]): Promise<string[]>;
  /** Fails with code INDEX_NOT_FOUND when there is no such index. */
  dropIndex(name: string): Promise<unknown>;
}

export interface MongoDbLike {
  collection<T extends Document>(name: string): CollectionLike<T>;
  readonly client: { startSession(): SessionLike };
}

/** What a connector hands the store: the database and how to let go of it. */
export interface MongoConnection {
  db: MongoDbLike;
  close(): Promise<void>;
}

export const DUPLICATE_KEY = 11000;
export const INDEX_NOT_FOUND = 27;
/** What a standalone mongod answers to any operation inside a transaction. */
export const ILLEGAL_OPERATION = 20;

/**
 * A duplicate-key failure: a single write's error (code 11000), or a bulk write's whose every
 * write error is one (an unordered insert reports each failed document in writeErrors).
 */
export function isDuplicateKeyError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; writeErrors?: unknown };
  if (e.writeErrors !== undefined) {
    const list: unknown[] = Array.isArray(e.writeErrors) ? e.writeErrors : [e.writeErrors];
    return list.length > 0 && list.every((w) => typeof w === 'object' && w !== null && (w as { code?: unknown }).code === DUPLICATE_KEY);
  }
  return e.code === DUPLICATE_KEY;
}
