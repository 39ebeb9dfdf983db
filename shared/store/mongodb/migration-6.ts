/**
 * MongoDB migration 6, the twin of SQLite's migration 6 (numbered alike): the policy version
 * history (issue #12). Its collections' indexes are in INDEXES (version 1 creates them at every
 * start); this starts the history of tenants created before it, at their current version.
 * Re-applied at each start like every Mongo migration, it finds nothing left to start.
 */
import { MongoHistory, startMissingHistories } from './policy-history.js';
import type { MongoMigration } from './schema.js';

export const MONGO_MIGRATION_6: MongoMigration = {
  version: 6,
  name: 'policy version history',
  async apply(db, now) {
    await startMissingHistories(db, new MongoHistory(db), () => now);
  },
};
