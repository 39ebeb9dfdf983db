/**
 * Request/response building blocks shared by every route plugin: the error body, pagination,
 * id params, and the helpers that turn a store `null` into a 404.
 */
import { z } from 'zod';
import { BOOLEAN_WORDS } from '../../shared/config.js';
import { createError } from '../../shared/errors.js';
import type { ListOptions, Page } from '../../shared/store/port.js';

export const ErrorBodySchema = z
  .object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      issues: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
    }),
  })
  .meta({
    id: 'Error',
    example: { error: { code: 'VALIDATION_FAILED', message: 'body.name: Too small', issues: [{ field: 'body.name', message: 'Too small' }] } },
  });

/** Documented once per route so clients see the error shape; the error handler guarantees it. */
export const errorResponses = { '4xx': ErrorBodySchema, '5xx': ErrorBodySchema } as const;

export const NoContent = z.undefined().describe('No content');

export { EpochMsSchema } from '../../shared/schemas/records.js';
export { humanName, plainText } from '../../shared/schemas/names.js';

/** Record ids in paths: the store decides whether they exist in the caller's tenant. */
export const IdSchema = z.string().min(1).max(128);
export const IdParams = z.object({ id: IdSchema });

export const MAX_PAGE = 1000;

const DECIMAL_INT_RE = /^(0|[1-9]\d{0,15})$/;

/**
 * A whole number in a query or path (also taken as a JSON number in a body): plain decimal digits
 * only. `z.coerce.number()` would take "0x10", "1e2", " 5", "5.0" or "" (as 0), so a client's
 * typo became some other number instead of a 400. The pipe keeps the OpenAPI type `integer`
 * (and its default), which is what the schema generator reads from its output side.
 */
export function intQuery(min: number, max: number, fallback?: number) {
  const n = z.number({ error: `must be a whole number in decimal digits, ${min}–${max}` }).int().min(min).max(max);
  const toNumber = (v: unknown): unknown => (typeof v === 'string' && DECIMAL_INT_RE.test(v) ? Number(v) : v);
  return fallback === undefined ? z.preprocess(toNumber, n) : z.preprocess(toNumber, n.default(fallback));
}

export const ListQuery = z.object({
  limit: intQuery(1, 1000, 50),
  cursor: z.string().min(1).max(512).optional().describe('next_cursor of the previous page'),
  page: intQuery(1, MAX_PAGE).optional().describe('1-based page number; an alternative to cursor (walks the cursor chain)'),
});
export type ListQueryT = z.output<typeof ListQuery>;

/** `ListQuery` plus resource-specific filters. */
export function listQuery<S extends z.ZodRawShape>(filters: S) {
  return ListQuery.extend(filters);
}

/**
 * The `sort` query field for a list whose store declares `fields` sortable: `sort=<field>`
 * ascending or `sort=-<field>` descending. Spread it into a list query schema.
 */
export function sortQuery<const F extends string>(fields: readonly [F, ...F[]]) {
  const values = [...fields, ...fields.map((f) => `-${f}` as const)] as [F | `-${F}`, ...Array<F | `-${F}`>];
  return {
    sort: z
      .enum(values)
      .optional()
      .describe(`sort by ${fields.join(', ')}; prefix with - for descending (the cursor is tied to the sort)`),
  };
}

/** Parses a validated `sort` query value into the store's sort option. */
export function toSort(sort: string | undefined): ListOptions['sort'] {
  if (sort === undefined) return undefined;
  return sort.startsWith('-') ? { field: sort.slice(1), dir: 'desc' } : { field: sort, dir: 'asc' };
}

export const NextCursor = z.string().nullable();

/**
 * Fetches one page, honouring `page` by walking the cursor chain from the start (pages are cheap
 * keyset reads, and page numbers are capped).
 */
export async function paginate<T>(
  q: ListQueryT & { sort?: string | undefined },
  fetch: (opts: ListOptions) => Promise<Page<T>>,
): Promise<Page<T>> {
  const sort = toSort(q.sort);
  if (q.cursor !== undefined && q.page !== undefined) {
    invalidField('query.page', 'give either cursor or page, not both');
  }
  let cursor: string | null = q.cursor ?? null;
  if (q.cursor === undefined && q.page !== undefined) {
    for (let p = 1; p < q.page; p++) {
      const prev = await fetch({ limit: q.limit, cursor, ...(sort !== undefined && { sort }) });
      if (prev.next_cursor === null) return { items: [], next_cursor: null };
      cursor = prev.next_cursor;
    }
  }
  return fetch({ limit: q.limit, cursor, ...(sort !== undefined && { sort }) });
}

/** Turns a store miss into a 404 naming what was looked up. */
export function found<T>(value: T | null, what: string): T {
  if (value === null) throw createError('NOT_FOUND', `${what} not found`);
  return value;
}

/** 404 for a referenced id, naming the request field that carried it. */
export function referenceNotFound(field: string, what: string): never {
  throw createError('NOT_FOUND', `${field}: ${what} not found`, [{ field, message: `${what} not found` }]);
}

/** Turns a store `false` (nothing deleted / not assigned) into a 404. */
export function existed(ok: boolean, what: string): void {
  if (!ok) throw createError('NOT_FOUND', `${what} not found`);
}

/** A 400 naming one field, for rules a schema cannot express (cross-field, catalogue lookups). */
export function invalidField(field: string, message: string): never {
  throw createError('VALIDATION_FAILED', `${field}: ${message}`, [{ field, message }]);
}

const ISO_8601_RE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/;
const MAX_EPOCH_MS = 8_640_000_000_000_000;

/** Whether an ISO 8601 text names a calendar day that exists (Date.parse rolls 2026-02-30 over to March 2). */
function isRealDay(text: string): boolean {
  const [y, m, d] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
  const day = new Date(0);
  day.setUTCFullYear(y, m - 1, d);
  return day.getUTCMonth() === m - 1 && day.getUTCDate() === d;
}

/**
 * A point in time in a query: epoch milliseconds, or ISO 8601 (`2026-01-31`, `2026-01-31T12:00Z`,
 * with an offset or Z; a date alone is midnight UTC). Anything else is a 400, never a guess.
 */
export const TimeQuery = z
  .string()
  .max(40)
  .transform((raw, ctx) => {
    const text = raw.trim();
    const ms = /^\d{1,16}$/.test(text) ? Number(text) : ISO_8601_RE.test(text) && isRealDay(text) ? Date.parse(text) : Number.NaN;
    if (!Number.isSafeInteger(ms) || ms < 0 || ms > MAX_EPOCH_MS) {
      ctx.addIssue({ code: 'custom', message: 'must be epoch milliseconds or an ISO 8601 date-time (e.g. 2026-01-31T12:00:00Z)' });
      return z.NEVER;
    }
    return ms;
  })
  .meta({ examples: ['2026-01-31T12:00:00Z', '1769860800000'] });

const DURATION_UNITS_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** The longest window a query may ask for (a year): beyond it "all time" is the answer. */
export const MAX_WINDOW_MS = 366 * 86_400_000;

/** A duration such as `90s`, `15m`, `24h` or `7d` (a bare number is seconds), in milliseconds. */
export const DurationQuery = z
  .string()
  .max(20)
  .transform((raw, ctx) => {
    const m = /^(\d{1,9})([smhd]?)$/.exec(raw.trim());
    const ms = m ? Number(m[1]) * DURATION_UNITS_MS[(m[2] || 's') as keyof typeof DURATION_UNITS_MS] : Number.NaN;
    if (!(ms > 0 && ms <= MAX_WINDOW_MS)) {
      ctx.addIssue({ code: 'custom', message: 'must be a duration like 90s, 15m, 24h or 7d (at most 366d)' });
      return z.NEVER;
    }
    return ms;
  })
  .meta({ examples: ['15m', '24h', '7d'] });

/** `since`/`until` query fields: `since` inclusive, `until` exclusive. */
export const timeRangeQuery = {
  since: TimeQuery.optional().describe('inclusive lower bound: epoch ms or ISO 8601'),
  until: TimeQuery.optional().describe('exclusive upper bound: epoch ms or ISO 8601'),
};

/** 400 when `until` is before `since` (equal bounds are an empty range). */
export function checkTimeRange(q: { since?: number | undefined; until?: number | undefined }): void {
  if (q.since !== undefined && q.until !== undefined && q.until < q.since) invalidField('query.until', 'must not be before since');
}

/** Boolean query values: the same spellings the configuration accepts (true/false, 1/0, yes/no). */
export const BooleanQuery = z
  .enum(BOOLEAN_WORDS)
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** Copies the defined values of `keys` from `q`: the filter object a store list takes. */
export function definedOf<T extends object, K extends keyof T>(q: T, keys: readonly K[]): { [P in K]?: Exclude<T[P], undefined> } {
  const out: { [P in K]?: Exclude<T[P], undefined> } = {};
  for (const k of keys) if (q[k] !== undefined) out[k] = q[k] as Exclude<T[K], undefined>;
  return out;
}
