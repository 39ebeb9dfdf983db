/**
 * Keyset pagination and sorting, independent of the query language (port: ListOptions). Every
 * listed record has a unique, time-ordered id (ULID or an operator id), so "rows after the last
 * id" is stable under concurrent inserts, unlike OFFSET. An adapter turns a PagePlan into its
 * query (fetching limit + 1 rows) and hands the rows back to finishPage.
 */
import { createError } from '../../errors.js';
import type { ListOptions, Page } from '../port.js';
import { SEVERITY_ORDER } from './alerts.js';
import { invalid } from './errors.js';

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
  if (id === '' || encodeCursor(id) !== cursor) throw cursorError('invalid cursor');
  return id;
}

/** How a field sorts: by its value, or by the rank of its value in an ordered enum. */
export interface SortField {
  rank?: readonly string[];
}
export type SortableFields = Readonly<Record<string, SortField>>;

const BY_VALUE: SortField = {};

/** Sortable fields per list (named by the SQLite table it reads). Lists absent here accept no `sort`. */
export const SORTABLE = {
  devices: { name: BY_VALUE, created_at: BY_VALUE, updated_at: BY_VALUE },
  users: { name: BY_VALUE, created_at: BY_VALUE },
  roles: { name: BY_VALUE, created_at: BY_VALUE },
  policies: { name: BY_VALUE, created_at: BY_VALUE },
  rules: { created_at: BY_VALUE },
  towers: { name: BY_VALUE, last_seen: BY_VALUE, state: BY_VALUE },
  alerts: { last_seen: BY_VALUE, count: BY_VALUE, severity: { rank: SEVERITY_ORDER }, first_seen: BY_VALUE },
  usage: { ts: BY_VALUE, received_at: BY_VALUE },
  audit_records: { at: BY_VALUE },
  commands: { created_at: BY_VALUE, updated_at: BY_VALUE, status: BY_VALUE },
  tenants: { name: BY_VALUE, created_at: BY_VALUE },
  apps: { key: BY_VALUE },
  actions: { key: BY_VALUE },
} as const satisfies Readonly<Record<string, SortableFields>>;

export type SortableList = keyof typeof SORTABLE;

export function sortableOf(list: string): SortableFields {
  return Object.prototype.hasOwnProperty.call(SORTABLE, list) ? SORTABLE[list as SortableList] : {};
}

export type SortValue = string | number | null;

/** The key a row sorts by: its value, or the value's rank for ranked fields. */
export function sortValue(spec: SortField, raw: unknown): SortValue {
  if (raw === null || raw === undefined) return null;
  if (spec.rank) return typeof raw === 'string' && spec.rank.includes(raw) ? spec.rank.indexOf(raw) : null;
  return typeof raw === 'string' || typeof raw === 'number' ? raw : null;
}

export interface UnsortedPage {
  limit: number;
  sort: null;
  order: 'asc' | 'desc';
  /** The last id of the previous page, or null for the first page. */
  after: string | null;
}

export interface SortedPage {
  limit: number;
  sort: { field: string; dir: 'asc' | 'desc'; spec: SortField };
  /**
   * The previous page's last (key, id). The next page is, in `dir`: rows whose key comes after
   * v, or equals v with a later id. NULL keys order below every value, in both directions.
   */
  after: { v: SortValue; id: string } | null;
}

export type PagePlan = UnsortedPage | SortedPage;

/** Prefixes a sorted cursor's payload; no record id contains NUL, so it never reads as a plain id. */
export const SORT_TAG = '\u0000s:';

interface SortCursor {
  f: string;
  d: 'asc' | 'desc';
  v: SortValue;
  id: string;
}

export function cursorError(message: string): Error {
  return invalid('cursor', message);
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

/**
 * Validates `sort` and `cursor` against the list's sortable fields. A cursor from a different sort
 * (or from the unsorted order) fails on `cursor`; an unsupported field fails on `sort`.
 */
export function planPage(opts: ListOptions | undefined, sortable: SortableFields, defaultOrder: 'asc' | 'desc'): PagePlan {
  const limit = clampLimit(opts?.limit);
  const sort = opts?.sort;
  const raw = decodeCursor(opts?.cursor);
  if (sort === undefined) {
    if (raw !== null && raw.startsWith(SORT_TAG)) throw cursorError('cursor belongs to a different sort');
    return { limit, sort: null, order: defaultOrder, after: raw };
  }
  const spec = Object.prototype.hasOwnProperty.call(sortable, sort.field) ? sortable[sort.field] : undefined;
  if (spec === undefined) {
    const allowed = Object.keys(sortable);
    const message = allowed.length > 0 ? `sortable fields: ${allowed.join(', ')}` : 'this list is not sortable';
    throw createError('VALIDATION_FAILED', `sort: ${message}`, [{ field: 'sort', message }]);
  }
  const dir = sort.dir;
  if (dir !== 'asc' && dir !== 'desc') throw invalid('sort', 'dir must be asc or desc');
  if (raw === null) return { limit, sort: { field: sort.field, dir, spec }, after: null };
  if (!raw.startsWith(SORT_TAG)) throw cursorError('cursor belongs to a different sort');
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.slice(SORT_TAG.length));
  } catch {
    throw cursorError('invalid cursor');
  }
  if (!isSortCursor(parsed)) throw cursorError('invalid cursor');
  if (parsed.f !== sort.field || parsed.d !== dir) throw cursorError('cursor belongs to a different sort');
  return { limit, sort: { field: sort.field, dir, spec }, after: { v: parsed.v, id: parsed.id } };
}

/**
 * `rows` was fetched with limit + 1 in the plan's order: the extra row only tells whether a next
 * page exists. `keyOf` gives a row's sort key (only called for sorted plans).
 */
export function finishPage<T extends { id: string }>(plan: PagePlan, rows: readonly T[], keyOf: (row: T) => SortValue): Page<T> {
  const more = rows.length > plan.limit;
  const items = rows.slice(0, plan.limit);
  const last = items[items.length - 1];
  if (!more || !last) return { items, next_cursor: null };
  if (plan.sort === null) return { items, next_cursor: encodeCursor(last.id) };
  const cursor: SortCursor = { f: plan.sort.field, d: plan.sort.dir, v: keyOf(last), id: last.id };
  return { items, next_cursor: encodeCursor(SORT_TAG + JSON.stringify(cursor)) };
}
