/**
 * Keyset pagination in SQL. What a page is (limits, cursors, sortable fields, NULL order) is
 * decided in ../rules/pagination.ts; this file only turns that plan into SQL.
 */
import type { ListOptions, Page } from '../port.js';
import { finishPage, planPage, sortableOf, type SortField, type SortValue } from '../rules/pagination.js';

export { clampLimit } from '../rules/pagination.js';

/** The extra column a sorted page selects so the cursor can carry the last row's sort key. */
export const SORT_KEY_COLUMN = '__sort_key';
type WithSortKey<T> = T & { [SORT_KEY_COLUMN]?: SortValue };

/** A field's SQL expression: the column, or a CASE rank for ordered enums (constants, never input). */
function sortExpression(column: string, spec: SortField): string {
  if (!spec.rank) return column;
  return `CASE ${column} ${spec.rank.map((value, i) => `WHEN '${value}' THEN ${i}`).join(' ')} END`;
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
 * Plans a keyset page of `list` (a SORTABLE key). Without `sort`: the id order. With `sort`:
 * order by (expr, id) in the requested direction. SQLite orders NULL below every value, and the
 * keyset predicate follows the same rule, so NULL sort keys page consistently in both directions.
 * `qualifier` prefixes sort columns when the list reads a join (e.g. 't.').
 */
export function keyset(
  opts: ListOptions | undefined,
  list: string,
  defaultOrder: 'asc' | 'desc',
  idCol = 'id',
  qualifier = '',
): KeysetPlan {
  const plan = planPage(opts, sortableOf(list), defaultOrder);
  if (plan.sort === null) {
    const cmp = plan.order === 'asc' ? '>' : '<';
    return {
      limit: plan.limit,
      select: '',
      where: plan.after === null ? null : `${idCol} ${cmp} ?`,
      params: plan.after === null ? [] : [plan.after],
      orderBy: `${idCol} ${plan.order.toUpperCase()}`,
      page: (rows) => finishPage(plan, rows, () => null),
    };
  }
  const { field, dir, spec } = plan.sort;
  const k = `(${sortExpression(qualifier + field, spec)})`;
  let where: string | null = null;
  const params: Array<string | number> = [];
  const after = plan.after;
  if (after !== null) {
    if (dir === 'asc') {
      // NULLs come first: after a NULL key, the rest of the NULLs (by id) then every non-NULL.
      if (after.v === null) {
        where = `((${k} IS NULL AND ${idCol} > ?) OR ${k} IS NOT NULL)`;
        params.push(after.id);
      } else {
        where = `(${k} > ? OR (${k} = ? AND ${idCol} > ?))`;
        params.push(after.v, after.v, after.id);
      }
    } else if (after.v === null) {
      // NULLs come last descending: only the remaining NULLs.
      where = `(${k} IS NULL AND ${idCol} < ?)`;
      params.push(after.id);
    } else {
      where = `(${k} < ? OR (${k} = ? AND ${idCol} < ?) OR ${k} IS NULL)`;
      params.push(after.v, after.v, after.id);
    }
  }
  const d = dir.toUpperCase();
  return {
    limit: plan.limit,
    select: `, ${k} AS ${SORT_KEY_COLUMN}`,
    where,
    params,
    orderBy: `${k} ${d}, ${idCol} ${d}`,
    page: <T extends { id: string }>(rows: Array<WithSortKey<T>>): Page<T> => {
      const page = finishPage(plan, rows, (row) => row[SORT_KEY_COLUMN] ?? null);
      const items = page.items.map((row) => {
        const { [SORT_KEY_COLUMN]: _key, ...rest } = row;
        return rest as unknown as T;
      });
      return { items, next_cursor: page.next_cursor };
    },
  };
}
