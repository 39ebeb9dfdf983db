import { describe, expect, it } from 'vitest';
import { isEdgeplaneError } from '../../errors.js';
import { nextAttemptAfter, normaliseEmail, requirePlanDeletable, requireRoomForDevice } from './platform.js';

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
});
