import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import type { UsageEvent } from '../shared/mqtt/payloads.js';
import { Batcher } from './batcher.js';
import type { OutboundBatch } from './offline-buffer.js';

const newId = createIdFactory();
const ev = (device = 'd1'): UsageEvent => ({ id: newId(), ts: 1, device_id: device, app: 'slack', action: 'upload' });

describe('Batcher', () => {
  let out: OutboundBatch[];
  let batcher: Batcher;

  beforeEach(() => {
    vi.useFakeTimers();
    out = [];
    batcher = new Batcher({ maxEvents: 3, maxDelayMs: 5, discoveryMaxDelayMs: 100, newId, now: () => 42, onBatch: (b) => out.push(b) });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('flushes a tenant batch as soon as it reaches maxEvents', () => {
    for (let i = 0; i < 7; i++) batcher.addUsage('acme', ev());
    expect(out.map((b) => (b.kind === 'usage' ? b.batch.events.length : -1))).toEqual([3, 3]);
    expect(batcher.pendingEvents).toBe(1);
  });

  it('flushes maxDelayMs after the first pending event, not later events', () => {
    batcher.addUsage('acme', ev());
    vi.advanceTimersByTime(4);
    batcher.addUsage('acme', ev());
    expect(out).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(out).toHaveLength(1);
    const first = out[0]!;
    expect(first.kind === 'usage' && first.batch.events.length).toBe(2);
    expect(first.batch.sent_at).toBe(42);
  });

  it('keeps one pending batch per tenant', () => {
    batcher.addUsage('acme', ev());
    batcher.addUsage('globex', ev());
    vi.advanceTimersByTime(5);
    expect(out.map((b) => (b.kind === 'usage' ? b.tenantId : '')).sort()).toEqual(['acme', 'globex']);
  });

  it('aggregates unknown devices into one discovery batch', () => {
    batcher.addDiscovery('x1', 10);
    batcher.addDiscovery('x1', 5);
    batcher.addDiscovery('x1', 20);
    batcher.addDiscovery('x2', 7);
    expect(batcher.pendingEvents).toBe(4);
    vi.advanceTimersByTime(100);
    expect(out).toHaveLength(1);
    const b = out[0]!;
    expect(b.kind).toBe('discovery');
    if (b.kind !== 'discovery') return;
    expect(b.batch.devices).toEqual([
      { device_id: 'x1', first_seen: 5, last_seen: 20, count: 3 },
      { device_id: 'x2', first_seen: 7, last_seen: 7, count: 1 },
    ]);
    expect(batcher.pendingEvents).toBe(0);
  });

  it('flushAll finishes everything and leaves no timer behind', () => {
    batcher.addUsage('acme', ev());
    batcher.addDiscovery('x1', 1);
    batcher.flushAll();
    expect(out.map((b) => b.kind).sort()).toEqual(['discovery', 'usage']);
    expect(vi.getTimerCount()).toBe(0);
  });
});
