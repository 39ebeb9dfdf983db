/**
 * MongoDB migration 5, the twin of SQLite's migration 5 (numbered alike so the two adapters'
 * histories read the same): unique natural keys for roles, policies and device-user e-mails.
 * Alert workflow fields need no migration (absent fields read as unset, see usage-repo.ts) and
 * the new indexes are in INDEXES.
 *
 * Like every Mongo migration it runs again at each start (schema.ts), so it must be cheap when
 * there is nothing to do: it only looks at documents without a key (written before this
 * version). Duplicates among them and the tenants' other documents are renamed (or, for
 * e-mails, cleared) exactly as SQLite does (rules/names.ts), each change audited; only then are
 * the unique indexes built.
 */
import { createIdFactory } from '../../ids.js';
import { dedupeAuditEntry, dedupeEmails, dedupeNames, emailKey, nameKey } from '../rules/names.js';
import type { AuditInput } from '../port.js';
import { C, NATURAL_KEY_INDEXES, type AuditDoc, type CollectionName, type PolicyDoc, type RoleDoc, type UserDoc } from './collections.js';
import type { Document, MongoDbLike } from './db-like.js';
import type { MongoMigration } from './schema.js';

async function audit(db: MongoDbLike, newId: () => string, entry: AuditInput): Promise<void> {
  const { before, after, ...fields } = entry;
  const id = newId();
  await db.collection<AuditDoc>(C.audit).insertOne({ _id: id, id, ...fields, before_json: JSON.stringify(before), after_json: JSON.stringify(after) });
}

async function uniqueNames(db: MongoDbLike, name: typeof C.roles | typeof C.policies, now: number, newId: () => string): Promise<void> {
  const coll = db.collection<RoleDoc | PolicyDoc>(name);
  const legacy = await coll.find({ name_key: { $exists: false } }).toArray();
  if (legacy.length === 0) return;
  const tenants = [...new Set(legacy.map((d) => d.tenant_id))];
  const rows = await coll.find({ tenant_id: { $in: tenants } }).toArray();
  for (const { row, name: renamed } of dedupeNames(rows)) {
    await coll.updateOne({ _id: row.id, tenant_id: row.tenant_id }, { $set: { name: renamed, name_key: nameKey(renamed), updated_at: now } });
    await audit(db, newId, dedupeAuditEntry(name === C.roles ? 'role' : 'policy', row, { name: row.name }, { name: renamed }, now));
  }
  for (const doc of await coll.find({ name_key: { $exists: false } }).toArray()) {
    await coll.updateOne({ _id: doc._id, tenant_id: doc.tenant_id }, { $set: { name_key: nameKey(doc.name) } });
  }
}

async function uniqueEmails(db: MongoDbLike, now: number, newId: () => string): Promise<void> {
  const users = db.collection<UserDoc>(C.users);
  const legacy = await users.find({ email_key: { $exists: false } }).toArray();
  if (legacy.length === 0) return;
  const tenants = [...new Set(legacy.map((d) => d.tenant_id))];
  const rows = await users.find({ tenant_id: { $in: tenants }, email: { $ne: null } }).toArray();
  for (const row of dedupeEmails(rows)) {
    await users.updateOne({ _id: row.id, tenant_id: row.tenant_id }, { $set: { email: null, email_key: null, updated_at: now } });
    await audit(db, newId, dedupeAuditEntry('user', row, { email: row.email }, { email: null }, now));
  }
  for (const doc of await users.find({ email_key: { $exists: false } }).toArray()) {
    await users.updateOne({ _id: doc._id, tenant_id: doc.tenant_id }, { $set: { email_key: emailKey(doc.email) } });
  }
}

export const MONGO_MIGRATION_5: MongoMigration = {
  version: 5,
  name: 'unique names and e-mails',
  async apply(db, now) {
    const newId = createIdFactory(() => now);
    await uniqueNames(db, C.roles, now, newId);
    await uniqueNames(db, C.policies, now, newId);
    await uniqueEmails(db, now, newId);
    for (const [name, specs] of Object.entries(NATURAL_KEY_INDEXES) as Array<[CollectionName, NonNullable<(typeof NATURAL_KEY_INDEXES)[CollectionName]>]>) {
      await db.collection<Document>(name).createIndexes(specs);
    }
  },
};
