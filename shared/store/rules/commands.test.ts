import { describe, expect, it } from 'vitest';
import type { CommandStatus } from '../../domain.js';
import { applyTransition, newCommand, NEXT, requireCommandDevice } from './commands.js';

const STATUSES: CommandStatus[] = ['pending', 'delivered', 'applied', 'failed', 'expired'];
const base = newCommand(
  { tenant_id: 't1', tower_id: 'tw', device_id: 'd', type: 'block_app', source: 'auto', expires_at: 99 },
  'c1',
  10,
);

describe('command rules', () => {
  it('creates pending commands with nulls for what was not given', () => {
    expect(base).toMatchObject({ id: 'c1', status: 'pending', attempts: 0, app: null, rule_id: null, created_at: 10, updated_at: 10 });
  });

  it('moves only forward and stamps delivery and ack', () => {
    const moves = STATUSES.flatMap((from) => STATUSES.filter((to) => NEXT[from].includes(to)).map((to) => `${from}>${to}`));
    expect(moves).toEqual([
      'pending>delivered',
      'pending>applied',
      'pending>failed',
      'pending>expired',
      'delivered>applied',
      'delivered>failed',
      'delivered>expired',
    ]);
    const delivered = applyTransition(base, 'delivered', 20, 'x');
    expect(delivered).toMatchObject({ status: 'delivered', delivered_at: 20, acked_at: null, ack_reason: null, updated_at: 20 });
    expect(applyTransition(delivered!, 'failed', 30, 'no')).toMatchObject({ delivered_at: 20, acked_at: 30, ack_reason: 'no' });
    expect(applyTransition({ ...base, status: 'expired' }, 'applied', 30, null)).toBeNull();
  });

  it('refuses another tenant’s device but not an unregistered one', () => {
    expect(() => requireCommandDevice('t1', null)).not.toThrow();
    expect(() => requireCommandDevice('t1', 't1')).not.toThrow();
    expect(() => requireCommandDevice('t1', 't2')).toThrow(/device_id/);
  });
});
