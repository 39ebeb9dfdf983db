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
