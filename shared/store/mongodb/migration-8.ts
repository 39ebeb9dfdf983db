/**
 * MongoDB schema version 8, the twin of SQLite's migration 8 (numbered alike): local decisions
 * and disagreements on usage (issue #11). Its index is in INDEXES (version 1 creates it at every
 * start); events stored before carry no local fields and read as "no local decision" (toUsage),
 * so there is nothing to rewrite.
 */
import type { MongoMigration } from './schema.js';

export const MONGO_MIGRATION_8: MongoMigration = {
  version: 8,
  name: 'local decisions and disagreements on usage',
  async apply() {},
};
