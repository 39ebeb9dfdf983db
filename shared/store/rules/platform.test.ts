import { describe, expect, it } from 'vitest';
import { isEdgeplaneError } from '../../errors.js';
import { interleaveDue, nextAttemptAfter, normaliseEmail, requirePlanDeletable, requireRoomForDevice } from './platform.js';

describe('platform rules', () => {
  const code = (fn: () => void): string => {
    try {
      fn();
      return 'ok';
    } catch (err) {
      return isEdgeplaneError(err) ? err.code : 'other';
    }
  };
  it('keeps the default plan and plans in use', () => {
    expect(code(() => requirePlanDeletable('free', 0))).toBe('CONFLICT');
    expect(code(() => requirePlanDeletable('gold', 2))).toBe('CONFLICT');
    expect(code(() => requirePlanDeletable('gold', 0))).toBe('ok');
  });
  it('enforces max_devices, null meaning unlimited', () => {
    expect(code(() => requireRoomForDevice({ id: 'p', max_devices: 2 }, 1))).toBe('ok');
    expect(code(() => requireRoomForDevice({ id: 'p', max_devices: 2 }, 2))).toBe('PLAN_LIMIT_EXCEEDED');
    expect(code(() => requireRoomForDevice({ id: 'p', max_devices: null }, 1e9))).toBe('ok');
  });
  it('never schedules a final webhook delivery again; lowercases e-mails', () => {
    expect(nextAttemptAfter({ status: 'pending', next_attempt_at: 5 })).toBe(5);
    expect(nextAttemptAfter({ status: 'failed', next_attempt_at: 5 })).toBeNull();
    expect(normaliseEmail('  Ann@Example.COM ')).toBe('ann@example.com');
  });
  it('interleaves due deliveries by tenant, the most overdue tenant first, up to the limit', () => {
    const d = (id: string, at: number) => ({ id, next_attempt_at: at });
    const a = [d('a1', 1), d('a2', 2), d('a3', 3)];
    const b = [d('b1', 9), d('b2', 10)];
    const c = [d('c1', 5)];
    const ids = (rows: Array<{ id: string }>) => rows.map((r) => r.id);
    expect(ids(interleaveDue([b, [], a, c], 100))).toEqual(['a1', 'c1', 'b1', 'a2', 'b2', 'a3']);
    expect(ids(interleaveDue([b, a, c], 4))).toEqual(['a1', 'c1', 'b1', 'a2']);
    expect(ids(interleaveDue([b, a, c], 2))).toEqual(['a1', 'c1']);
    // Equal oldest times: by id.
    expect(ids(interleaveDue([[d('y', 1)], [d('x', 1)]], 10))).toEqual(['x', 'y']);
    expect(interleaveDue([], 10)).toEqual([]);
  });
});
