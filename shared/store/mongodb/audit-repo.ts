/**
 * The audit log: append-only. Records leave only through the retention purge or with their
 * tenant. Newest first by id (the order the store saw the changes), like the SQLite adapter.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { AuditRecord } from '../../domain.js';
import type { Store } from '../port.js';
import { C, type AuditDoc } from './collections.js';
import { strip, type MongoContext } from './context.js';
import type { Document } from './db-like.js';
import type { TenantRefs } from './entity.js';

/** Equality filters of AuditFilter, each reading the field of the same name. */
const EQUALITY_FILTERS = ['actor_id', 'actor_kind', 'action', 'resource_type', 'resource_id'] as const;

/** Records deleted per purge round: each round is one bounded deleteMany, not one huge one. */
export const AUDIT_PURGE_SLICE = 5000;

/** undefined (or a value JSON cannot represent) is stored as null, like null. */
function toJsonText(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  return JSON.stringify(value) ?? null;
}

function toRecord(doc: AuditDoc): AuditRecord {
  const { before_json, after_json, ...row } = strip(doc);
  return {
    ...row,
    before: before_json === null ? null : (JSON.parse(before_json) as unknown),
    after: after_json === null ? null : (JSON.parse(after_json) as unknown),
  };
}

export function createAuditRepo(ctx: MongoContext, refs: TenantRefs): Store['audit'] {
  const audit = ctx.coll<AuditDoc>(C.audit);
  return {
    async record(input) {
      return ctx.write(async ({ session }) => {
        if (input.tenant_id !== null) await refs.requireTenant(session, input.tenant_id);
        const { before, after, ...fields } = input;
        const doc: AuditDoc = { _id: ctx.newId(), id: '', ...fields, before_json: toJsonText(before), after_json: toJsonText(after) };
        doc.id = doc._id;
        await audit.insertOne(doc, { session });
        // Returned as a read would return it (JSON round trip), so record() and get() agree.
        return toRecord(doc);
      });
    },
    async list(tenantId, opts) {
      const filter: Document = { tenant_id: tenantId };
      for (const field of EQUALITY_FILTERS) {
        const value = opts?.[field];
        if (value !== undefined) filter[field] = value;
      }
      const at: Document = {};
      if (opts?.since !== undefined) at['$gte'] = opts.since;
      if (opts?.until !== undefined) at['$lt'] = opts.until;
      if (Object.keys(at).length > 0) filter['at'] = at;
      return ctx.listPage(audit, filter, opts, 'audit_records', 'desc', toRecord);
    },
    async get(tenantId, id) {
      const doc = await audit.findOne({ _id: id, tenant_id: tenantId });
      return doc ? toRecord(doc) : null;
    },
    async purge(tenantId, before) {
      let deleted = 0;
      for (;;) {
        const slice = await audit.find({ tenant_id: tenantId, at: { $lt: before } }, { limit: AUDIT_PURGE_SLICE }).toArray();
        if (slice.length === 0) return deleted;
        deleted += (await audit.deleteMany({ tenant_id: tenantId, _id: { $in: slice.map((d) => d._id) } })).deletedCount;
        if (slice.length < AUDIT_PURGE_SLICE) return deleted;
        await yieldToEventLoop();
      }
    },
  };
}
