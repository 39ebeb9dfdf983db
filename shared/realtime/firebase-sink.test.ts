/**
 * FirebaseSink at the firebase-admin boundary: a recording RealtimeWriter stands in for the
 * database and fake timers drive the flush interval.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InProcessBus } from '../bus.js';
import type { Alert, CommandRecord, UsageRecord } from '../domain.js';
import { Counters } from '../metrics.js';
import { NOW, testAlert } from './test-alerts.js';
import { FIREBASE_PATHS, FirebaseSink } from './firebase-sink.js';
import { INCREMENT, type RealtimeWriter } from './realtime-writer.js';
import { NO_WORKFLOW } from '../store/rules/alerts.js';

const FLUSH_MS = 1000;

class RecordingWriter implements RealtimeWriter {
  readonly updates: Array<Record<string, unknown>> = [];
  closed = false;
  /** Number of upcoming updates that reject. */
  failNext = 0;

  async update(values: Record<string, unknown>): Promise<void> {
    this.updates.push(structuredClone(values));
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('network down');
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

function alert(id: string, count: number, tenant = 't1'): Alert {
  return testAlert(id, { tenant_id: tenant, count, last_seen: NOW + count });
}

function command(id: string, status: CommandRecord['status']): CommandRecord {
  return {
    id,
    tenant_id: 't1',
    tower_id: 'T1',
    device_id: 'dev-1',
    type: 'block_app',
    app: 'dropbox',
    duration_s: 600,
    reason: 'rule r1',
    source: 'auto',
    rule_id: 'r1',
    issued_by: null,
    status,
    attempts: 1,
    created_at: NOW,
    updated_at: NOW + 5,
    expires_at: NOW + 3_600_000,
    delivered_at: null,
    acked_at: null,
    ack_reason: null,
  };
}

function usage(n: number, denied: number): UsageRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `e${i}`,
    tenant_id: 't1',
    tower_id: 'T1',
    batch_id: 'b1',
    device_id: 'dev-1',
    user_id: 'u1',
    app: 'dropbox',
    action: 'upload',
    bytes: null,
    ts: NOW,
    received_at: NOW,
    effect: i < denied ? ('deny' as const) : ('allow' as const),
    reason: 'rule' as const,
    rule_id: 'r1',
    policy_id: 'p1',
    policy_version: 1,
    local_effect: null,
    local_policy_version: null,
    disagreement: false,
  }));
}

let bus: InProcessBus;
let writer: RecordingWriter;
let counters: Counters;
let sink: FirebaseSink;
let onError: ReturnType<typeof vi.fn<(err: unknown) => void>>;

beforeEach(() => {
  vi.useFakeTimers();
  bus = new InProcessBus();
  writer = new RecordingWriter();
  counters = new Counters();
  onError = vi.fn<(err: unknown) => void>();
  sink = new FirebaseSink({ bus, writer, counters, flushMs: FLUSH_MS, now: () => NOW, onError });
});
afterEach(async () => {
  await sink.stop();
  vi.useRealTimers();
});

describe('FirebaseSink', () => {
  it('does nothing before start()', async () => {
    bus.publish('alert.opened', { tenant_id: 't1', alert: alert('a1', 1) });
    await vi.advanceTimersByTimeAsync(FLUSH_MS * 3);
    expect(writer.updates).toEqual([]);
  });

  it('turns 1,000 bus events within one interval into exactly one merged update', async () => {
    sink.start();
    bus.publish('alert.opened', { tenant_id: 't1', alert: alert('a1', 1) });
    for (let i = 2; i <= 400; i++) bus.publish('alert.updated', { tenant_id: 't1', alert: alert('a1', i) });
    for (let i = 0; i < 300; i++) bus.publish('usage.decided', { tenant_id: 't1', tower_id: 'T1', records: usage(3, 1) });
    for (let i = 0; i < 200; i++) bus.publish('usage.decided', { tenant_id: 't2', tower_id: 'T2', records: usage(2, 0) });
    for (let i = 0; i < 99; i++) bus.publish('command.updated', { tenant_id: 't1', command: command('c1', 'pending') });
    bus.publish('command.updated', { tenant_id: 't1', command: command('c1', 'applied') });

    await vi.advanceTimersByTimeAsync(FLUSH_MS - 1);
    expect(writer.updates).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(writer.updates).toHaveLength(1);
    expect(writer.updates[0]).toEqual({
      'tenants/t1/alerts/a1': {
        device_id: 'dev-1',
        rule_id: 'r1',
        policy_id: 'p1',
        app: 'dropbox',
        action: 'upload',
        severity: 'high',
        count: 400,
        first_seen: NOW,
        last_seen: NOW + 400,
        status: 'open',
        tower_id: 'T1',
        ...NO_WORKFLOW,
      },
      'tenants/t1/remediations/c1': {
        type: 'block_app',
        device_id: 'dev-1',
        app: 'dropbox',
        tower_id: 'T1',
        status: 'applied',
        source: 'auto',
        attempts: 1,
        updated_at: NOW + 5,
        expires_at: NOW + 3_600_000,
      },
      'tenants/t1/counters/events': INCREMENT(900),
      'tenants/t1/counters/denied': INCREMENT(300),
      'tenants/t1/counters/updated_at': NOW,
      'tenants/t2/counters/events': INCREMENT(400),
      'tenants/t2/counters/updated_at': NOW,
    });
    expect(counters.get('firebase_writes_total')).toBe(1);

    // Nothing new: no further writes.
    await vi.advanceTimersByTimeAsync(FLUSH_MS * 5);
    expect(writer.updates).toHaveLength(1);
  });

  it('writes at most once per interval under a steady stream', async () => {
    sink.start();
    for (let tick = 0; tick < 10 * FLUSH_MS; tick += 10) {
      bus.publish('usage.decided', { tenant_id: 't1', tower_id: 'T1', records: usage(1, 0) });
      await vi.advanceTimersByTimeAsync(10);
    }
    expect(writer.updates.length).toBeLessThanOrEqual(10);
    await sink.stop();
    const total = writer.updates.reduce((sum, u) => {
      const v = u['tenants/t1/counters/events'] as ReturnType<typeof INCREMENT> | undefined;
      return sum + (v?.['.sv'].increment ?? 0);
    }, 0);
    expect(total).toBe(1000);
  });

  it('retries a failed write at the next flush, merged with newer values, keeping increments', async () => {
    sink.start();
    writer.failNext = 1;

    bus.publish('usage.decided', { tenant_id: 't1', tower_id: 'T1', records: usage(5, 2) });
    bus.publish('alert.opened', { tenant_id: 't1', alert: alert('a1', 1) });
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(writer.updates).toHaveLength(1);
    expect(counters.get('firebase_write_errors_total')).toBe(1);
    expect(onError).toHaveBeenCalledTimes(1);
    expect(sink.pendingPaths).toBe(4);

    bus.publish('usage.decided', { tenant_id: 't1', tower_id: 'T1', records: usage(4, 1) });
    bus.publish('alert.updated', { tenant_id: 't1', alert: alert('a1', 2) });
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(writer.updates).toHaveLength(2);
    expect(writer.updates[1]).toMatchObject({
      'tenants/t1/counters/events': INCREMENT(9),
      'tenants/t1/counters/denied': INCREMENT(3),
      'tenants/t1/alerts/a1': { count: 2 },
    });
    expect(counters.get('firebase_writes_total')).toBe(1);
    expect(sink.pendingPaths).toBe(0);
  });

  it('keeps increments recorded while a failing write is in flight', async () => {
    // A writer whose updates stay in flight until the test rejects them.
    let rejectWrite: (err: Error) => void = () => {};
    const slow: RealtimeWriter = {
      update: vi.fn(
        (values: Record<string, unknown>) =>
          new Promise<void>((_, reject) => {
            writer.updates.push(structuredClone(values));
            rejectWrite = reject;
          }),
      ),
      close: async () => {},
    };
    sink = new FirebaseSink({ bus, writer: slow, counters, flushMs: FLUSH_MS, now: () => NOW });
    sink.start();
    bus.publish('usage.decided', { tenant_id: 't1', tower_id: 'T1', records: usage(2, 0) });
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(writer.updates).toHaveLength(1);
    // Recorded while the first write is still in flight.
    bus.publish('usage.decided', { tenant_id: 't1', tower_id: 'T1', records: usage(3, 0) });
    await vi.advanceTimersByTimeAsync(FLUSH_MS * 3);
    expect(writer.updates).toHaveLength(1);
    rejectWrite(new Error('timeout'));
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(writer.updates).toHaveLength(2);
    expect(writer.updates[1]!['tenants/t1/counters/events']).toEqual(INCREMENT(5));
    rejectWrite(new Error('timeout'));
    vi.mocked(slow.update).mockResolvedValueOnce(undefined);
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(slow.update).toHaveBeenLastCalledWith(expect.objectContaining({ 'tenants/t1/counters/events': INCREMENT(5) }));
  });

  it('stop() unsubscribes, flushes what is pending and closes the writer', async () => {
    sink.start();
    bus.publish('alert.opened', { tenant_id: 't1', alert: alert('a1', 1) });
    bus.publish('usage.decided', { tenant_id: 't1', tower_id: 'T1', records: usage(1, 1) });
    await sink.stop();
    expect(writer.updates).toHaveLength(1);
    expect(Object.keys(writer.updates[0]!).sort()).toEqual([
      'tenants/t1/alerts/a1',
      'tenants/t1/counters/denied',
      'tenants/t1/counters/events',
      'tenants/t1/counters/updated_at',
    ]);
    expect(writer.closed).toBe(true);

    bus.publish('alert.updated', { tenant_id: 't1', alert: alert('a1', 2) });
    await vi.advanceTimersByTimeAsync(FLUSH_MS * 2);
    expect(writer.updates).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('mirrors alert workflow steps: the alert node after acknowledge, assign and resolve', async () => {
    sink.start();
    const a = alert('a1', 2);
    const step = { id: 's', tenant_id: 't1', alert_id: 'a1', kind: 'acknowledged' as const, at: NOW, actor_id: 'u1', assignee: null, note: null };
    bus.publish('alert.acknowledged', { tenant_id: 't1', alert: { ...a, status: 'acknowledged', acknowledged_by: 'u1', acknowledged_at: NOW + 1 }, step });
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(writer.updates[0]!['tenants/t1/alerts/a1']).toMatchObject({ status: 'acknowledged', acknowledged_by: 'u1', acknowledged_at: NOW + 1 });
    bus.publish('alert.assigned', { tenant_id: 't1', alert: { ...a, status: 'acknowledged', assigned_to: 'u2', assigned_at: NOW + 2, assigned_by: 'u1' }, step: { ...step, kind: 'assigned', assignee: 'u2' } });
    bus.publish('alert.resolved', { tenant_id: 't1', alert: { ...a, status: 'resolved', assigned_to: 'u2', resolved_by: 'u2', resolved_at: NOW + 3, note: 'fixed' }, step: { ...step, kind: 'resolved' } });
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(writer.updates).toHaveLength(2);
    expect(writer.updates[1]!['tenants/t1/alerts/a1']).toMatchObject({ status: 'resolved', assigned_to: 'u2', resolved_by: 'u2', resolved_at: NOW + 3, note: 'fixed' });
  });

  it('escapes characters Realtime Database keys may not contain', async () => {
    sink.start();
    bus.publish('alert.opened', { tenant_id: 'a.b', alert: alert('x/y#1', 1, 'a.b') });
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(Object.keys(writer.updates[0]!)).toEqual(['tenants/a%2Eb/alerts/x%2Fy%231']);
  });

  it('documents its path layout', () => {
    expect(FIREBASE_PATHS.map((p) => p.path)).toEqual([
      'tenants/{tenantId}/alerts/{alertId}',
      'tenants/{tenantId}/remediations/{commandId}',
      'tenants/{tenantId}/counters/events',
      'tenants/{tenantId}/counters/denied',
      'tenants/{tenantId}/counters/updated_at',
    ]);
  });
});
