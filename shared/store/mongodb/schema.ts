/**
 * Schema setup for init(): indexes, seed plans and the schema version, all idempotent, so any
 * number of processes may run it at once (createIndexes with the same spec is a no-op; seeds are
 * upserts that never overwrite an operator's edits).
 */
import { createError } from '../../errors.js';
import { SEED_PLANS } from '../rules/defaults.js';
import { C, INDEXES, INGEST_INDEXES, type CollectionName, type MigrationDoc, type PlanDoc } from './collections.js';
import { ILLEGAL_OPERATION, INDEX_NOT_FOUND, type Document, type MongoDbLike } from './db-like.js';
import { MONGO_MIGRATION_5 } from './migration-5.js';
import { MONGO_MIGRATION_6 } from './migration-6.js';
import { MONGO_MIGRATION_8 } from './migration-8.js';

export interface MongoMigration {
  version: number;
  name: string;
  apply(db: MongoDbLike, now: number): Promise<void>;
}

export const MONGO_MIGRATIONS: readonly MongoMigration[] = [
  {
    version: 1,
    name: 'collections, indexes, seed plans',
    async apply(db, now) {
      for (const [name, specs] of Object.entries(INDEXES) as Array<[CollectionName, NonNullable<(typeof INDEXES)[CollectionName]>]>) {
        await db.collection<Document>(name).createIndexes(specs);
      }
      const plans = db.collection<PlanDoc>(C.plans);
      for (const plan of SEED_PLANS) {
        await plans.updateOne({ _id: plan.id }, { $setOnInsert: { ...plan, created_at: now, updated_at: now } }, { upsert: true });
      }
    },
  },
  {
    // E-mails became unique per tenant (rules/console-users.ts); version 1 (re-applied above on
    // every start) now creates the per-tenant index, this drops the platform-wide one.
    version: 2,
    name: 'console e-mails unique per tenant',
    async apply(db) {
      try {
        await db.collection<Document>(C.consoleUsers).dropIndex('email_1');
      } catch (err) {
        if ((err as { code?: unknown }).code !== INDEX_NOT_FOUND) throw err;
      }
    },
  },
  MONGO_MIGRATION_5,
  MONGO_MIGRATION_6,
  {
    version: 7,
    name: 'carrier feeds, device metadata, RADIUS accounting sessions',
    async apply(db) {
      for (const [name, specs] of Object.entries(INGEST_INDEXES) as Array<[CollectionName, NonNullable<(typeof INGEST_INDEXES)[CollectionName]>]>) {
        await db.collection<Document>(name).createIndexes(specs);
      }
      // Towers written before carriers could manage them are operators'; the fields exist on every row.
      await db.collection<Document>(C.towers).updateMany({ managed_by: { $exists: false } }, { $set: { managed_by: null } });
      await db.collection<Document>(C.towers).updateMany({ retired_at: { $exists: false } }, { $set: { retired_at: null } });
    },
  },
  MONGO_MIGRATION_8,
];

/**
 * Fails start-up with a clear error when the server refuses transactions (a standalone mongod):
 * otherwise init() would succeed (indexes and seeds need none) and every write would fail later.
 */
export async function requireTransactions(db: MongoDbLike): Promise<void> {
  const session = db.client.startSession();
  try {
    // A transaction that sends nothing never reaches the server: the probe reads once inside it.
    await session.withTransaction(async (s) => {
      await db.collection<MigrationDoc>(C.migrations).findOne({}, { session: s });
    });
  } catch (err) {
    if ((err as { code?: unknown }).code !== ILLEGAL_OPERATION) throw err;
    throw createError(
      'UNAVAILABLE',
      'MongoDB refuses transactions: EdgePlane needs a replica set (a one-node one is enough: mongod --replSet rs0, then rs.initiate()) or a mongos',
    );
  } finally {
    await session.endSession();
  }
}

export async function runMongoMigrations(db: MongoDbLike, now: () => number, migrations = MONGO_MIGRATIONS): Promise<number[]> {
  const record = db.collection<MigrationDoc>(C.migrations);
  const latestKnown = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  const newest = (await record.find({}, { sort: { _id: -1 }, limit: 1 }).toArray())[0]?._id ?? 0;
  if (newest > latestKnown) {
    throw createError('UNAVAILABLE', `database schema version ${newest} is newer than this build (${latestKnown}); upgrade EdgePlane`);
  }
  const applied: number[] = [];
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    // Applied again even when recorded: every step is idempotent, and a process that died
    // halfway through a migration must not leave it half done behind a recorded version.
    const at = now();
    await migration.apply(db, at);
    const res = await record.updateOne(
      { _id: migration.version },
      { $setOnInsert: { name: migration.name, applied_at: at } },
      { upsert: true },
    );
    if (res.upsertedCount > 0) applied.push(migration.version);
  }
  return applied;
}
