/**
 * BOUNDARY DOUBLE (tests only): one collection of the in-memory stand-in for a MongoDB server,
 * implementing exactly CollectionLike (db-like.ts). Matching, sorting and update operators are
 * mingo's (a maintained implementation of MongoDB's query language), not hand-written; what the
 * double adds is what the adapter relies on from a server: unique indexes raising E11000 (single
 * writes: code 11000; unordered bulk inserts: writeErrors per failed document), upserts seeded
 * from the filter's equality fields, copies in and out so callers never share its state, and the
 * server's refusals of updates mingo would apply: one path changed by two operators ($set and
 * $setOnInsert of one field, code 40) and $inc of or by a non-number (code 14).
 */
import { Query, find, update as applyUpdate } from 'mingo';
import type { AnyObject } from 'mingo/types';
import type { IndexDescription } from 'mongodb';
import {
  DUPLICATE_KEY,
  INDEX_NOT_FOUND,
  type CollectionLike,
  type CursorLike,
  type Document,
  type FindOptionsLike,
  type OpOptions,
  type UpdateResultLike,
  type WithId,
} from './db-like.js';

/** A collection's contents: documents by `_id` (as canonical JSON) and its index specs. */
export interface CollectionState {
  docs: Map<string, AnyObject>;
  indexes: IndexDescription[];
}

export function cloneState(state: CollectionState): CollectionState {
  return { docs: new Map([...state.docs].map(([k, d]) => [k, structuredClone(d)])), indexes: [...state.indexes] };
}

/** Resolves the state an operation works on (committed, or the session's transaction copy). */
export interface StateAccess {
  run<R>(options: OpOptions | undefined, write: boolean, op: (state: CollectionState) => R): Promise<R>;
}

const idKey = (id: unknown): string => JSON.stringify(id);
const asObject = (value: unknown): AnyObject => value as AnyObject;

function duplicateKey(collection: string, index: string, key: unknown): Error & { code: number } {
  const err = new Error(`E11000 duplicate key error collection: ${collection} index: ${index} dup key: ${JSON.stringify(key)}`);
  return Object.assign(err, { name: 'MongoServerError', code: DUPLICATE_KEY });
}

function keyFields(spec: IndexDescription): string[] {
  return spec.key instanceof Map ? [...spec.key.keys()] : Object.keys(spec.key);
}

function indexName(spec: IndexDescription): string {
  return spec.name ?? keyFields(spec).map((f) => `${f}_1`).join('_');
}

/** Missing fields index as null, as in MongoDB. */
function indexKey(doc: AnyObject, fields: string[]): string {
  return JSON.stringify(fields.map((f) => doc[f] ?? null));
}

function matches(filter: unknown, doc: AnyObject): boolean {
  return new Query(asObject(filter)).test(doc);
}

/** The top-level equality fields of a filter: what an upsert's new document starts with. */
function upsertSeed(filter: AnyObject): AnyObject {
  const seed: AnyObject = {};
  for (const [k, v] of Object.entries(filter)) {
    if (k.startsWith('$')) continue;
    const isOperator = v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).some((x) => x.startsWith('$'));
    if (!isOperator) seed[k] = structuredClone(v);
  }
  return seed;
}

type Modifier = Parameters<typeof applyUpdate>[1];

function serverError(code: number, codeName: string, message: string): Error & { code: number } {
  return Object.assign(new Error(message), { name: 'MongoServerError', code, codeName });
}

/** Where mingo is more lenient than a server, the update is refused as the server refuses it. */
function checkUpdate(doc: AnyObject, update: unknown): void {
  const paths = Object.values(asObject(update)).flatMap((fields) => Object.keys(asObject(fields)));
  // One path (or a path and its parent) changed by two operators: ConflictingUpdateOperators.
  for (const [i, a] of paths.entries()) {
    for (const b of paths.slice(i + 1)) {
      if (a === b || a.startsWith(`${b}.`) || b.startsWith(`${a}.`)) {
        throw serverError(40, 'ConflictingUpdateOperators', `Updating the path '${b}' would create a conflict at '${a}'`);
      }
    }
  }
  // $inc adds numbers to numbers (or to a missing field) only: TypeMismatch.
  for (const [path, by] of Object.entries(asObject(asObject(update)['$inc'] ?? {}))) {
    if (typeof by !== 'number') throw serverError(14, 'TypeMismatch', `Cannot increment with non-numeric argument: {${path}: ${JSON.stringify(by)}}`);
    const current = path.split('.').reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? asObject(v)[k] : undefined), doc);
    if (current !== undefined && typeof current !== 'number') {
      throw serverError(14, 'TypeMismatch', `Cannot apply $inc to a value of non-numeric type. The field '${path}' has a non-numeric value`);
    }
  }
}

function toModifier(update: unknown, inserting: boolean): Modifier {
  const { $setOnInsert, ...rest } = asObject(update);
  if (!inserting || $setOnInsert === undefined) return rest as Modifier;
  return { ...rest, $set: { ...asObject(rest['$set'] ?? {}), ...asObject($setOnInsert) } } as Modifier;
}

export class MemoryCollection<T extends Document> implements CollectionLike<T> {
  constructor(
    private readonly name: string,
    private readonly access: StateAccess,
  ) {}

  /** Refuses `doc` when it would repeat `_id` or a unique index key of another document. */
  private checkUnique(state: CollectionState, doc: AnyObject, self: string | null): void {
    const id = idKey(doc['_id']);
    if (id !== self && state.docs.has(id)) throw duplicateKey(this.name, '_id_', { _id: doc['_id'] });
    for (const spec of state.indexes) {
      if (!spec.unique) continue;
      const partial = spec.partialFilterExpression;
      if (partial && !matches(partial, doc)) continue;
      const fields = keyFields(spec);
      const key = indexKey(doc, fields);
      for (const [otherId, other] of state.docs) {
        if (otherId === self || (partial && !matches(partial, other))) continue;
        if (indexKey(other, fields) === key) throw duplicateKey(this.name, indexName(spec), JSON.parse(key));
      }
    }
  }

  private insertInto(state: CollectionState, doc: AnyObject): void {
    if (doc['_id'] === undefined) throw new Error(`${this.name}: the adapter always sets _id`);
    const copy = structuredClone(doc);
    this.checkUnique(state, copy, null);
    state.docs.set(idKey(copy['_id']), copy);
  }

  private select(state: CollectionState, filter: unknown, options: FindOptionsLike = {}): AnyObject[] {
    let cursor = find([...state.docs.values()], asObject(filter));
    if (options.sort !== undefined) cursor = cursor.sort(options.sort as Record<string, 1 | -1>);
    if (options.limit !== undefined && options.limit > 0) cursor = cursor.limit(options.limit);
    return cursor.all() as AnyObject[];
  }

  /** Applies `update` to a copy of `doc`, checks unique indexes, then replaces it. */
  private replace(state: CollectionState, doc: AnyObject, update: unknown): AnyObject {
    const next = structuredClone(doc);
    checkUpdate(next, update);
    applyUpdate(next, toModifier(update, false));
    const self = idKey(doc['_id']);
    if (idKey(next['_id']) !== self) throw new Error(`${this.name}: _id is immutable`);
    this.checkUnique(state, next, self);
    state.docs.set(self, next);
    return next;
  }

  private upsert(state: CollectionState, filter: unknown, update: unknown): AnyObject {
    const doc = upsertSeed(asObject(filter));
    checkUpdate(doc, update);
    applyUpdate(doc, toModifier(update, true));
    this.insertInto(state, doc);
    return doc;
  }

  private out(doc: AnyObject): WithId<T> {
    return structuredClone(doc) as WithId<T>;
  }

  async insertOne(doc: Parameters<CollectionLike<T>['insertOne']>[0], options?: OpOptions): Promise<unknown> {
    return this.access.run(options, true, (state) => {
      this.insertInto(state, asObject(doc));
      return { acknowledged: true, insertedId: asObject(doc)['_id'] };
    });
  }

  async insertMany(
    docs: Parameters<CollectionLike<T>['insertMany']>[0],
    options?: OpOptions & { ordered?: boolean },
  ): Promise<{ insertedCount: number }> {
    return this.access.run(options, true, (state) => {
      const ordered = options?.ordered ?? true;
      const writeErrors: Array<{ index: number; code: number; errmsg: string }> = [];
      let insertedCount = 0;
      for (const [index, doc] of docs.entries()) {
        try {
          this.insertInto(state, asObject(doc));
          insertedCount++;
        } catch (err) {
          const code = (err as { code?: number }).code ?? 0;
          writeErrors.push({ index, code, errmsg: err instanceof Error ? err.message : String(err) });
          if (ordered) break;
        }
      }
      if (writeErrors.length > 0) {
        const first = writeErrors[0]!;
        // The shape of the driver's MongoBulkWriteError that callers read.
        throw Object.assign(new Error(first.errmsg), { name: 'MongoBulkWriteError', code: first.code, writeErrors, insertedCount });
      }
      return { insertedCount };
    });
  }

  async findOne(filter: Parameters<CollectionLike<T>['findOne']>[0], options?: FindOptionsLike): Promise<WithId<T> | null> {
    return this.access.run(options, false, (state) => {
      const doc = this.select(state, filter, { ...options, limit: 1 })[0];
      return doc ? this.out(doc) : null;
    });
  }

  find(filter: Parameters<CollectionLike<T>['find']>[0], options?: FindOptionsLike): CursorLike<WithId<T>> {
    return {
      toArray: () => this.access.run(options, false, (state) => this.select(state, filter, options).map((d) => this.out(d))),
    };
  }

  async updateOne(
    filter: Parameters<CollectionLike<T>['updateOne']>[0],
    update: Parameters<CollectionLike<T>['updateOne']>[1],
    options?: OpOptions & { upsert?: boolean },
  ): Promise<UpdateResultLike> {
    return this.access.run(options, true, (state) => {
      const doc = this.select(state, filter, { limit: 1 })[0];
      if (doc) {
        const before = JSON.stringify(doc);
        const after = this.replace(state, doc, update);
        return { matchedCount: 1, modifiedCount: JSON.stringify(after) === before ? 0 : 1, upsertedCount: 0 };
      }
      if (!options?.upsert) return { matchedCount: 0, modifiedCount: 0, upsertedCount: 0 };
      this.upsert(state, filter, update);
      return { matchedCount: 0, modifiedCount: 0, upsertedCount: 1 };
    });
  }

  async updateMany(
    filter: Parameters<CollectionLike<T>['updateMany']>[0],
    update: Parameters<CollectionLike<T>['updateMany']>[1],
    options?: OpOptions,
  ): Promise<UpdateResultLike> {
    return this.access.run(options, true, (state) => {
      const docs = this.select(state, filter);
      for (const doc of docs) this.replace(state, doc, update);
      return { matchedCount: docs.length, modifiedCount: docs.length, upsertedCount: 0 };
    });
  }

  async findOneAndUpdate(
    filter: Parameters<CollectionLike<T>['findOneAndUpdate']>[0],
    update: Parameters<CollectionLike<T>['findOneAndUpdate']>[1],
    options: OpOptions & { returnDocument: 'before' | 'after' },
  ): Promise<WithId<T> | null> {
    return this.access.run(options, true, (state) => {
      const doc = this.select(state, filter, { limit: 1 })[0];
      if (!doc) return null;
      const before = this.out(doc);
      const after = this.replace(state, doc, update);
      return options.returnDocument === 'after' ? this.out(after) : before;
    });
  }

  async deleteOne(filter: Parameters<CollectionLike<T>['deleteOne']>[0], options?: OpOptions): Promise<{ deletedCount: number }> {
    return this.access.run(options, true, (state) => {
      const doc = this.select(state, filter, { limit: 1 })[0];
      if (!doc) return { deletedCount: 0 };
      state.docs.delete(idKey(doc['_id']));
      return { deletedCount: 1 };
    });
  }

  async deleteMany(filter: Parameters<CollectionLike<T>['deleteMany']>[0], options?: OpOptions): Promise<{ deletedCount: number }> {
    return this.access.run(options, true, (state) => {
      const docs = this.select(state, filter);
      for (const doc of docs) state.docs.delete(idKey(doc['_id']));
      return { deletedCount: docs.length };
    });
  }

  async countDocuments(filter: Parameters<CollectionLike<T>['countDocuments']>[0], options?: OpOptions): Promise<number> {
    return this.access.run(options, false, (state) => this.select(state, filter).length);
  }

  async createIndexes(specs: IndexDescription[]): Promise<string[]> {
    return this.access.run(undefined, true, (state) => {
      for (const spec of specs) {
        const name = indexName(spec);
        if (state.indexes.some((existing) => indexName(existing) === name)) continue;
        state.indexes.push(spec);
        // Like the server, a unique index cannot be built over documents that already repeat its key.
        if (spec.unique) for (const [id, doc] of state.docs) this.checkUnique(state, doc, id);
      }
      return specs.map(indexName);
    });
  }

  async dropIndex(name: string): Promise<unknown> {
    return this.access.run(undefined, true, (state) => {
      const at = state.indexes.findIndex((spec) => indexName(spec) === name);
      if (at < 0) throw Object.assign(new Error(`index not found with name [${name}]`), { name: 'MongoServerError', code: INDEX_NOT_FOUND });
      state.indexes.splice(at, 1);
      return { ok: 1 };
    });
  }
}

export function emptyState(): CollectionState {
  return { docs: new Map(), indexes: [] };
}

export { matches as matchesFilter };
