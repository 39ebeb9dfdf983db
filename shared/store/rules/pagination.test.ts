import { describe, expect, it } from 'vitest';
import { isEdgeplaneError } from '../../errors.js';
import type { ListOptions } from '../port.js';
import { clampLimit, decodeCursor, encodeCursor, finishPage, planPage, sortableOf, sortValue, SORTABLE } from './pagination.js';

const fieldOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    return isEdgeplaneError(err) && err.code === 'VALIDATION_FAILED' ? (err.issues?.[0]?.field ?? '') : 'other';
  }
  return 'passed';
};
const rows = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `id-${i}`, name: i % 2 === 0 ? null : `n${i}` }));

describe('pagination rules', () => {
  it('clamps limits and round-trips cursors, refusing any it did not issue', () => {
    expect([clampLimit(undefined), clampLimit(0), clampLimit(-3), clampLimit(7.9), clampLimit(5000), clampLimit(Number.NaN)]).toEqual([
      50, 1, 1, 7, 1000, 50,
    ]);
    expect(decodeCursor(encodeCursor('01ABC'))).toBe('01ABC');
    expect(decodeCursor(null)).toBeNull();
    expect(decodeCursor('')).toBeNull();
    expect(fieldOf(() => decodeCursor('!!not-a-cursor!!'))).toBe('cursor');
  });

  it('pages by id without sort and hands out the last id', () => {
    const plan = planPage({ limit: 2 }, {}, 'desc');
    expect(plan).toEqual({ limit: 2, sort: null, order: 'desc', after: null });
    const page = finishPage(plan, rows(3), () => null);
    expect(page.items).toHaveLength(2);
    expect(planPage({ cursor: page.next_cursor }, {}, 'desc')).toMatchObject({ after: 'id-1' });
    expect(finishPage(plan, rows(2), () => null).next_cursor).toBeNull();
  });

  it('carries the sort key and direction in a sorted cursor and refuses it elsewhere', () => {
    const sortable = sortableOf('devices');
    const opts: ListOptions = { limit: 2, sort: { field: 'name', dir: 'asc' } };
    const plan = planPage(opts, sortable, 'asc');
    const page = finishPage(plan, rows(3), (r) => r.name);
    const next = planPage({ ...opts, cursor: page.next_cursor }, sortable, 'asc');
    expect(next.after).toEqual({ v: 'n1', id: 'id-1' });
    expect(fieldOf(() => planPage({ ...opts, cursor: page.next_cursor, sort: { field: 'name', dir: 'desc' } }, sortable, 'asc'))).toBe('cursor');
    expect(fieldOf(() => planPage({ cursor: page.next_cursor }, sortable, 'asc'))).toBe('cursor');
    expect(fieldOf(() => planPage({ ...opts, cursor: encodeCursor('id-1') }, sortable, 'asc'))).toBe('cursor');
    expect(fieldOf(() => planPage({ sort: { field: 'os', dir: 'asc' } }, sortable, 'asc'))).toBe('sort');
    expect(fieldOf(() => planPage({ sort: { field: 'name', dir: 'up' as 'asc' } }, sortable, 'asc'))).toBe('sort');
    expect(fieldOf(() => planPage({ sort: { field: 'name', dir: 'asc' } }, sortableOf('webhooks'), 'asc'))).toBe('sort');
    expect(fieldOf(() => planPage({ sort: { field: 'toString', dir: 'asc' } }, sortable, 'asc'))).toBe('sort');
  });

  it('sorts severity by rank, other fields by value, NULL as null', () => {
    expect(['low', 'medium', 'high', 'critical'].map((s) => sortValue(SORTABLE.alerts.severity, s))).toEqual([0, 1, 2, 3]);
    expect(sortValue(SORTABLE.towers.last_seen, null)).toBeNull();
    expect(sortValue(SORTABLE.towers.name, 'x')).toBe('x');
  });
});
