/**
 * BOUNDARY DOUBLE (tests only): an in-memory stand-in for a MongoDB replica set, for machines
 * where no server can run. It implements exactly MongoDbLike (db-like.ts), the subset of the
 * driver the adapter uses, so the adapter's own logic runs here unchanged; the real server leg
 * is mongo-store.test.ts (MONGODB_URL).
 *
 * Transactions: withTransaction works on copies of the collections it touches and swaps them in
 * on commit, so a failure leaves nothing behind. Transactions and single operations are
 * serialised, which is stricter than the server's snapshot isolation (no write conflicts can
 * occur here; the adapter's conflict handling is exercised only against a real server). As on
 * the server, any write error inside a transaction aborts it: later operations of the session
 * fail and the commit never happens. An operation issued inside a transaction without its session
 * is refused, because on a server it would run outside the transaction.
 *
 * `standalone: true` plays a standalone mongod: single operations work, but every operation inside
 * a transaction fails as the server fails it (IllegalOperation, code 20).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { MongoConnector } from './mongo-store.js';
import { ILLEGAL_OPERATION, type CollectionLike, type Document, type MongoDbLike, type OpOptions, type SessionLike } from './db-like.js';
import { MemoryCollection, cloneState, emptyState, type CollectionState, type StateAccess } from './memory-collection-double.js';

type Databases = Map<string, Map<string, CollectionState>>;

export interface MemoryMongoOptions {
  /** Behave as a standalone mongod, which refuses transactions. */
  standalone?: boolean;
}

interface Transaction {
  /** Working copies of the collections touched so far, by database and collection. */
  working: Map<string, CollectionState>;
  aborted: Error | null;
}

/** A FIFO mutex: one transaction or single operation at a time. */
class Mutex {
  private tail: Promise<void> = Promise.resolve();

  async acquire(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((resolve) => (release = resolve));
    const previous = this.tail;
    this.tail = previous.then(() => next);
    await previous;
    return release;
  }
}

class MemorySession implements SessionLike {
  transaction: Transaction | null = null;
  ended = false;

  constructor(private readonly server: MemoryMongo) {}

  async withTransaction<R>(fn: (session: SessionLike) => Promise<R>): Promise<R> {
    if (this.ended) throw new Error('session ended');
    if (this.transaction) throw new Error('a transaction is already in progress on this session');
    return this.server.transact(this, fn);
  }

  async endSession(): Promise<void> {
    this.ended = true;
  }
}

export class MemoryMongo {
  private readonly databases: Databases = new Map();
  private readonly mutex = new Mutex();
  private readonly inTransaction = new AsyncLocalStorage<MemorySession>();

  constructor(private readonly options: MemoryMongoOptions = {}) {}

  /** Hands MongoStore this double instead of the driver (MongoStoreOptions.connector). */
  readonly connector: MongoConnector = async (_url, dbName) => ({ db: this.db(dbName), close: async () => {} });

  db(name: string): MongoDbLike {
    const access = (collection: string): StateAccess => this.access(name, collection);
    const startSession = (): SessionLike => new MemorySession(this);
    return {
      collection<T extends Document>(collection: string): CollectionLike<T> {
        return new MemoryCollection<T>(collection, access(collection));
      },
      client: { startSession },
    };
  }

  /** Committed documents of a collection (tests look for leftovers and stored shapes). */
  documentCount(dbName: string, collection: string): number {
    return this.databases.get(dbName)?.get(collection)?.docs.size ?? 0;
  }

  /** A committed document by `_id`, read synchronously: what any other client would see now. */
  peek(dbName: string, collection: string, id: unknown): Document | null {
    const doc = this.databases.get(dbName)?.get(collection)?.docs.get(JSON.stringify(id));
    return doc ? structuredClone(doc) : null;
  }

  private committed(dbName: string, collection: string): CollectionState {
    let db = this.databases.get(dbName);
    if (!db) this.databases.set(dbName, (db = new Map()));
    let state = db.get(collection);
    if (!state) db.set(collection, (state = emptyState()));
    return state;
  }

  private access(dbName: string, collection: string): StateAccess {
    const key = JSON.stringify([dbName, collection]);
    return {
      run: async <R>(options: OpOptions | undefined, _write: boolean, op: (state: CollectionState) => R): Promise<R> => {
        const session = options?.session;
        if (session === undefined) {
          if (this.inTransaction.getStore()) {
            throw new Error(`${collection}: operation inside a transaction without its session (it would run outside it)`);
          }
          const release = await this.mutex.acquire();
          try {
            return op(this.committed(dbName, collection));
          } finally {
            release();
          }
        }
        if (!(session instanceof MemorySession) || session.transaction === null) {
          throw new Error(`${collection}: the adapter passes sessions only inside withTransaction`);
        }
        if (this.options.standalone) {
          const message = 'Transaction numbers are only allowed on a replica set member or mongos';
          throw Object.assign(new Error(message), { name: 'MongoServerError', code: ILLEGAL_OPERATION, codeName: 'IllegalOperation' });
        }
        const txn = session.transaction;
        if (txn.aborted) throw Object.assign(new Error('Transaction has been aborted'), { code: 251, cause: txn.aborted });
        let state = txn.working.get(key);
        if (!state) txn.working.set(key, (state = cloneState(this.committed(dbName, collection))));
        try {
          return op(state);
        } catch (err) {
          // As on the server: a failed operation aborts the whole transaction.
          txn.aborted = err instanceof Error ? err : new Error(String(err));
          throw err;
        }
      },
    };
  }

  async transact<R>(session: MemorySession, fn: (session: SessionLike) => Promise<R>): Promise<R> {
    const release = await this.mutex.acquire();
    const txn: Transaction = { working: new Map(), aborted: null };
    session.transaction = txn;
    try {
      const result = await this.inTransaction.run(session, () => fn(session));
      if (txn.aborted) throw txn.aborted;
      for (const [key, state] of txn.working) {
        const [dbName, collection] = JSON.parse(key) as [string, string];
        this.committed(dbName, collection);
        this.databases.get(dbName)!.set(collection, state);
      }
      return result;
    } finally {
      session.transaction = null;
      release();
    }
  }
}
