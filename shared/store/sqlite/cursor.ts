/**
 * Keyset pagination. Every listed record has a unique, time-ordered id (ULID or an operator id),
 * so "rows after the last id" is stable under concurrent inserts, unlike OFFSET.
 */
import { createError } from '../../errors.js';
import type { ListOptions, Page } from '../port.js';

export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 1000;

export function clampLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return DEFAULT_LIMIT;
  return Math.min(MAX_LIMIT, Math.max(1, Math.floor(limit)));
}

/** Opaque to clients so the key can change (e.g. to a compound key) without breaking them. */
export function encodeCursor(lastId: string): string {
  return Buffer.from(lastId, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string | null | undefined): string | null {
  if (cursor === undefined || cursor === null || cursor === '') return null;
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  // Node's decoder silently skips junk characters; a round trip proves the cursor is one of ours.
  if (id === '' || encodeCursor(id) !== cursor) {
    throw createError('VALIDATION_FAILED', 'cursor: invalid cursor', [{ field: 'cursor', message: 'invalid cursor' }]);
  }
  return id;
}

export interface PageRequest {
  limit: number;
  /** The last id of the previous page, or null for the first page. */
  after: string | null;
}

export function pageRequest(opts: ListOptions | undefined): PageRequest {
  return { limit: clampLimit(opts?.limit), after: decodeCursor(opts?.cursor) };
}

/** `rows` was fetched with LIMIT limit + 1: the extra row only tells whether a next page exists. */
export function toPage<T extends { id: string }>(rows: T[], limit: number): Page<T> {
  if (rows.length <= limit) return { items: rows, next_cursor: null };
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, next_cursor: last ? encodeCursor(last.id) : null };
}

/** A sortable field's SQL expression (a column, or a rank for ordered enums). Never from input. */
export type Sortable = Readonly<Record<string, string>>;

const SEVERITY_RANK = "CASE severity WHEN 'low' THEN 0 WHEN 'medium' THEN 1 WHEN 'high' THEN 2 WHEN 'critical' THEN 3 END";

/** Sortable fields per table, keyed by table name. Tables absent here accept no `sort`. */
export const SORTABLE: Readonly<Record<string, Sortable>> = {
  devices: { name: 'name', created_at: 'created_at', updated_at: 'updated_at' },
  users: { name: 'name', created_at: 'created_at' },
  roles: { name: 'name', created_at: 'created_at' },
  policies: { name: 'name', created_at: 'created_at' },
  rules: { created_at: 'created_at' },
  towers: { name: 'name', last_seen: 'last_seen', state: 'state' },
  alerts: { last_seen: 'last_seen', count: 'count', severity: SEVERITY_RANK, first_seen: 'first_seen' },
  usage: { ts: 'ts', received_at: 'received_at' },
  audit_records: { at: 'at' },
  commands: { created_at: 'created_at', updated_at: 'updated_at', status: 'status' },
  tenants: { name: 'name', created_at: 'created_at' },
  apps: { key: 'key' },
  actions: { key: 'key' },
};

/** Prefixes a sorted cursor's payload; no record id contains NUL, so it never reads as a plain id. */
const SORT_TAG = '\u0000s:';
type SortValue = string | number | null;
interface SortCursor {
  f: string;
  d: 'asc' | 'desc';
  v: SortValue;
  id: string;
}

/** The extra column a sorted page selects so the cursor can carry the last row's sort key. */
export const SORT_KEY_COLUMN = '__sort_key';
type WithSortKey<T> = T & { [SORT_KEY_COLUMN]?: SortValue };

function cursorError(message: string): Error {
  return createError('VALIDATION_FAILED', `cursor: ${message}`, [{ field: 'cursor', message }]);
}

function isSortCursor(value: unknown): value is SortCursor {
  if (typeof value !== 'object' || value === null) return false;
  const c = value as Record<string, unknown>;
  const v = c['v'];
  return (
    typeof c['f'] === 'string' &&
    (c['d'] === 'asc' || c['d'] === 'desc') &&
    typeof c['id'] === 'string' &&
    (v === null || typeof v === 'string' || typeof v === 'number')
  );
}

function encodeSortCursor(c: SortCursor): string {
  return encodeCursor(SORT_TAG + JSON.stringify(c));
}

export interface KeysetPlan {
  limit: number;
  /** Extra SELECT column (with leading comma) or ''. */
  select: string;
  /** Condition to AND into the WHERE clause, or null on the first page. */
  where: string | null;
  params: Array<string | number>;
  orderBy: string;
  page<T extends { id: string }>(rows: Array<WithSortKey<T>>): Page<T>;
}

/**
 * Plans a keyset page. Without `sort`: the unchanged id order. With `sort`: order by
 * (expr, id) in the requested direction. SQLite orders NULL below every value, and the keyset
 * predicate follows the same rule, so NULL sort keys page consistently in both directions.
 */
export function keyset(
  opts: ListOptions | undefined,
  sortable: Sortable,
  defaultOrder: 'asc' | 'desc',
  idCol = 'id',
): KeysetPlan {
  const limit = clampLimit(opts?.limit);
  const sort = opts?.sort;
  if (sort === undefined) {
    const after = decodeCursor(opts?.cursor);
    if (after !== null && after.startsWith(SORT_TAG)) throw cursorError('cursor belongs to a different sort');
    const cmp = defaultOrder === 'asc' ? '>' : '<';
    return {
      limit,
      select: '',
      where: after === null ? null : `${idCol} ${cmp} ?`,
      params: after === null ? [] : [after],
      orderBy: `${idCol} ${defaultOrder.toUpperCase()}`,
      page: (rows) => toPage(rows, limit),
    };
  }
  const expr = Object.prototype.hasOwnProperty.call(sortable, sort.field) ? sortable[sort.field] : undefined;
  if (expr === undefined) {
    const allowed = Object.keys(sortable);
    const message = allowed.length > 0 ? `sortable fields: ${allowed.join(', ')}` : 'this list is not sortable';
    throw createError('VALIDATION_FAILED', `sort: ${message}`, [{ field: 'sort', message }]);
  }
  const dir = sort.dir;
  if (dir !== 'asc' && dir !== 'desc') {
    throw createError('VALIDATION_FAILED', 'sort: dir must be asc or desc', [{ field: 'sort', message: 'dir must be asc or desc' }]);
  }
  let where: string | null = null;
  const params: Array<string | number> = [];
  const raw = decodeCursor(opts?.cursor);
  if (raw !== null) {
    if (!raw.startsWith(SORT_TAG)) throw cursorError('cursor belongs to a different sort');
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.slice(SORT_TAG.length));
    } catch {
      throw cursorError('invalid cursor');
    }
    if (!isSortCursor(parsed)) throw cursorError('invalid cursor');
    if (parsed.f !== sort.field || parsed.d !== dir) throw cursorError('cursor belongs to a different sort');
    const k = `(${expr})`;
    if (dir === 'asc') {
      // NULLs come first: after a NULL key, the rest of the NULLs (by id) then every non-NULL.
      if (parsed.v === null) {
        where = `((${k} IS NULL AND ${idCol} > ?) OR ${k} IS NOT NULL)`;
        params.push(parsed.id);
      } else {
        where = `(${k} > ? OR (${k} = ? AND ${idCol} > ?))`;
        params.push(parsed.v, parsed.v, parsed.id);
      }
    } else if (parsed.v === null) {
      // NULLs come last descending: only the remaining NULLs.
      where = `(${k} IS NULL AND ${idCol} < ?)`;
      params.push(parsed.id);
    } else {
      where = `(${k} < ? OR (${k} = ? AND ${idCol} < ?) OR ${k} IS NULL)`;
      params.push(parsed.v, parsed.v, parsed.id);
    }
  }
  const d = dir.toUpperCase();
  return {
    limit,
    select: `, (${expr}) AS ${SORT_KEY_COLUMN}`,
    where,
    params,
    orderBy: `(${expr}) ${d}, ${idCol} ${d}`,
    page: <T extends { id: string }>(rows: Array<WithSortKey<T>>): Page<T> => {
      const more = rows.length > limit;
      const kept = rows.slice(0, limit);
      const items = kept.map((row) => {
        const { [SORT_KEY_COLUMN]: _key, ...rest } = row;
        return rest as unknown as T;
      });
      const last = kept[kept.length - 1];
      const next =
        more && last ? encodeSortCursor({ f: sort.field, d: dir, v: last[SORT_KEY_COLUMN] ?? null, id: last.id }) : null;
      return { items, next_cursor: next };
    },
  };
}
