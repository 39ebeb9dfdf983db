/**
 * The audit log (DESIGN §5): append-only. Records are written once and leave only through the
 * retention purge or with their tenant; there is no update or single-row delete on purpose.
 *
 * Newest first by id, not by `at`: ids are minted as records are written, whereas `at` is the
 * caller's clock, so id order is the order the store saw the changes and a stable cursor key.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { AuditRecord } from '../../domain.js';
import type { AuditFilter, ListOptions, Page, Store } from '../port.js';
import type { SqliteContext, Stmt } from './context.js';
import { limitClause } from './context.js';
import { keyset } from './cursor.js';
import type { TenantRefs } from './refs.js';

/** before/after are JSON text on disk, under names that are not SQL keywords. */
interface AuditRow extends Omit<AuditRecord, 'before' | 'after'> {
  before_json: string | null;
  after_json: string | null;
}

const AUDIT_COLUMNS = [
  'id',
  'tenant_id',
  'actor_kind',
  'actor_id',
  'actor_label',
  'action',
  'resource_type',
  'resource_id',
  'method',
  'path',
  'status_code',
  'ip',
  'user_agent',
  'before_json',
  'after_json',
  'at',
] as const satisfies ReadonlyArray<keyof AuditRow>;

const COLUMN_LIST = AUDIT_COLUMNS.join(', ');

/** Equality filters of AuditFilter and the column each one reads. */
const EQUALITY_FILTERS = ['actor_id', 'actor_kind', 'action', 'resource_type', 'resource_id'] as const satisfies ReadonlyArray<
  keyof AuditFilter & keyof AuditRow
>;

/** Rows per purge transaction, for the same reason as the usage purge (usage-retention.ts). */
export const AUDIT_PURGE_SLICE = 5000;

export interface AuditRepoOptions {
  /** Tests shrink it to cross slice boundaries with a handful of rows. */
  purgeSlice?: number;
}

/** undefined (or a value JSON cannot represent) is stored as NULL, like null. */
function toJsonText(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  return JSON.stringify(value) ?? null;
}

function toRecord({ before_json, after_json, ...row }: AuditRow): AuditRecord {
  return {
    ...row,
    before: before_json === null ? null : (JSON.parse(before_json) as unknown),
    after: after_json === null ? null : (JSON.parse(after_json) as unknown),
  };
}

export function createAuditRepo(ctx: SqliteContext, refs: TenantRefs, options: AuditRepoOptions = {}): Store['audit'] {
  const purgeSlice = options.purgeSlice ?? AUDIT_PURGE_SLICE;
  const insert: Stmt<[AuditRow]> = ctx.db.prepare(
    `INSERT INTO audit_records (${COLUMN_LIST}) VALUES (${AUDIT_COLUMNS.map((c) => `@${c}`).join(', ')})`,
  );
  // IS compares NULL with NULL as equal: one statement serves tenants and the platform.
  const getOne: Stmt<[string, string | null], AuditRow> = ctx.db.prepare(
    `SELECT ${COLUMN_LIST} FROM audit_records WHERE id = ? AND tenant_id IS ?`,
  );
  // The inner SELECT walks the (tenant_id, at) index (IS: the platform's records too); the slice
  // keeps each write lock short.
  const purgeOne: Stmt<[string | null, string | null, number]> = ctx.db.prepare(
    `DELETE FROM audit_records WHERE tenant_id IS ? AND id IN (
       SELECT id FROM audit_records WHERE tenant_id IS ? AND at < ? ${limitClause(purgeSlice)})`,
  );

  return {
    async record(input) {
      return ctx.write(() => {
        if (input.tenant_id !== null) refs.requireTenant(input.tenant_id);
        const row: AuditRow = {
          id: ctx.newId(),
          tenant_id: input.tenant_id,
          actor_kind: input.actor_kind,
          actor_id: input.actor_id,
          actor_label: input.actor_label,
          action: input.action,
          resource_type: input.resource_type,
          resource_id: input.resource_id,
          method: input.method,
          path: input.path,
          status_code: input.status_code,
          ip: input.ip,
          user_agent: input.user_agent,
          before_json: toJsonText(input.before),
          after_json: toJsonText(input.after),
          at: input.at,
        };
        insert.run(row);
        // Returned as a read would return it (JSON round trip), so record() and get() agree.
        return toRecord(row);
      });
    },
    async list(tenantId, opts) {
      return listAudit(ctx, tenantId, opts);
    },
    async get(tenantId, id) {
      const row = getOne.get(id, tenantId);
      return row ? toRecord(row) : null;
    },
    async purge(tenantId, before) {
      let deleted = 0;
      for (;;) {
        const n = ctx.write(() => purgeOne.run(tenantId, tenantId, before).changes);
        deleted += n;
        if (n < purgeSlice) return deleted;
        await yieldToEventLoop();
      }
    },
  };
}

/**
 * One keyset page. Only column names from the constants above enter the SQL; every value is
 * bound, and each filter shape is prepared once (ctx.stmt caches by SQL text).
 */
function listAudit(
  ctx: SqliteContext,
  tenantId: string | null,
  opts: (ListOptions & AuditFilter) | undefined,
): Page<AuditRecord> {
  const plan = keyset(opts, 'audit_records', 'desc');
  const where: string[] = [];
  const params: Array<string | number> = [];
  if (tenantId === null) {
    where.push('tenant_id IS NULL');
  } else {
    where.push('tenant_id = ?');
    params.push(tenantId);
  }
  for (const column of EQUALITY_FILTERS) {
    const value = opts?.[column];
    if (value === undefined) continue;
    where.push(`${column} = ?`);
    params.push(value);
  }
  if (opts?.since !== undefined) {
    where.push('at >= ?');
    params.push(opts.since);
  }
  if (opts?.until !== undefined) {
    where.push('at < ?');
    params.push(opts.until);
  }
  if (plan.where !== null) {
    where.push(plan.where);
    params.push(...plan.params);
  }
  const sql = `SELECT ${COLUMN_LIST}${plan.select} FROM audit_records WHERE ${where.join(' AND ')} ORDER BY ${plan.orderBy} ${limitClause(plan.limit + 1)}`;
  const page = plan.page(ctx.rows<AuditRow>(sql, params));
  return { items: page.items.map(toRecord), next_cursor: page.next_cursor };
}
