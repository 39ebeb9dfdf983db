/**
 * A Firebase outage seen from the sink: the database refuses writes, or never answers them (the
 * SDK keeps an unacknowledged write pending while the database is unreachable). Memory stays
 * bounded and counted, and shutdown does not wait for a database that is gone. Firebase is mocked
 * at its boundary (RealtimeWriter); fake timers drive the flush interval and stop()'s deadline.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InProcessBus } from '../bus.js';
import type { Alert } from '../domain.js';
import { Counters } from '../metrics.js';
import { NOW, testAlert } from './test-alerts.js';
import { FirebaseSink } from './firebase-sink.js';
import type { RealtimeWriter } from './realtime-writer.js';

const FLUSH_MS = 1000;
const STOP_TIMEOUT_MS = 5000;

/** A database that is down: each update either rejects, or never settles when `hang` is set. */
class DownWriter implements RealtimeWriter {
  calls = 0;
  hang = false;
  closed = false;

  update(): Promise<void> {
    this.calls++;
    return this.hang ? new Promise<void>(() => {}) : Promise.reject(new Error('network down'));
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

const alert = (id: string): Alert => testAlert(id);

let bus: InProcessBus;
let writer: DownWriter;
let counters: Counters;
let sink: FirebaseSink;

beforeEach(() => {
  vi.useFakeTimers();
  bus = new InProcessBus();
  writer = new DownWriter();
  counters = new Counters();
  sink = new FirebaseSink({ bus, writer, counters, flushMs: FLUSH_MS, now: () => NOW, maxPendingPaths: 100, stopTimeoutMs: STOP_TIMEOUT_MS, onError: () => {} });
  sink.start();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('FirebaseSink during a Firebase outage', () => {
  it('keeps at most maxPendingPaths waiting while writes fail, counting the new paths it drops', async () => {
    for (let i = 0; i < 250; i++) bus.publish('alert.opened', { tenant_id: 't1', alert: alert(`a${i}`) });
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    for (let i = 250; i < 400; i++) bus.publish('alert.opened', { tenant_id: 't1', alert: alert(`a${i}`) });
    await vi.advanceTimersByTimeAsync(FLUSH_MS * 3);

    expect(writer.calls).toBeGreaterThanOrEqual(2);
    expect(sink.pendingPaths).toBe(100);
    expect(counters.get('firebase_dropped_total')).toBe(300);
    // A path already waiting still takes its newer value.
    bus.publish('alert.updated', { tenant_id: 't1', alert: alert('a0') });
    expect(counters.get('firebase_dropped_total')).toBe(300);
    await sink.stop();
  });

  it('stop() gives up on writes the database never answers, counts them, and closes the writer', async () => {
    writer.hang = true;
    bus.publish('alert.opened', { tenant_id: 't1', alert: alert('a1') });
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(writer.calls).toBe(1);
    bus.publish('alert.opened', { tenant_id: 't1', alert: alert('a2') });
    bus.publish('alert.opened', { tenant_id: 't1', alert: alert('a3') });

    let stopped = false;
    const stopping = sink.stop().then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(STOP_TIMEOUT_MS - 1);
    expect(stopped).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await stopping;
    expect(writer.closed).toBe(true);
    expect(counters.get('firebase_dropped_total')).toBe(2);
    expect(vi.getTimerCount()).toBe(0);
  });
});
