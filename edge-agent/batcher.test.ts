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

  const microtasks = () => Promise.resolve();
  const sizes = () => out.map((b) => (b.kind === 'usage' ? b.batch.events.length : -1));

  it('with nothing awaiting an answer, sends at once: events of the same task travel together', async () => {
    batcher.addUsage('acme', ev());
    batcher.addUsage('acme', ev());
    expect(out).toHaveLength(0);
    await microtasks(); // no timer, no loop iteration
    expect(sizes()).toEqual([2]);
    expect(out[0]!.batch.sent_at).toBe(42);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('an idle batch that maxEvents already sent is not sent again by its microtask', async () => {
    for (let i = 0; i < 4; i++) batcher.addUsage('acme', ev());
    expect(sizes()).toEqual([3]);
    await microtasks();
    // The 4th event is in a new pending batch, held behind the 3 awaiting their answer.
    expect(sizes()).toEqual([3]);
    vi.advanceTimersByTime(5);
    expect(sizes()).toEqual([3, 1]);
  });

  it('while a batch awaits its answer, accumulates and sends when the answer comes', async () => {
    batcher.addUsage('acme', ev());
    await microtasks();
    expect(sizes()).toEqual([1]);
    const first = out[0]!;
    batcher.addUsage('acme', ev());
    batcher.addUsage('acme', ev());
    vi.advanceTimersByTime(4);
    expect(sizes()).toEqual([1]);
    batcher.answered('acme', first.batch.id);
    expect(sizes()).toEqual([1, 2]);
  });

  it('an answer that does not come holds a batch back maxDelayMs at most', async () => {
    batcher.addUsage('acme', ev());
    await microtasks();
    batcher.addUsage('acme', ev());
    vi.advanceTimersByTime(4);
    batcher.addUsage('acme', ev());
    expect(sizes()).toEqual([1]);
    vi.advanceTimersByTime(1);
    expect(sizes()).toEqual([1, 2]);
  });

  it('forgets an answer that never came after answerTimeoutMs', async () => {
    let clock = 0;
    const b = new Batcher({ maxEvents: 10, maxDelayMs: 50, discoveryMaxDelayMs: 100, newId, now: () => clock, onBatch: (x) => out.push(x), answerTimeoutMs: 1000 });
    b.addUsage('acme', ev());
    await microtasks();
    clock = 2000;
    b.addUsage('acme', ev());
    await microtasks();
    // Sent at once, not held for maxDelayMs behind the lost batch.
    expect(sizes()).toEqual([1, 1]);
  });

  it('keeps one pending batch per tenant; one tenant awaiting does not hold another back', async () => {
    batcher.addUsage('acme', ev());
    await microtasks();
    batcher.addUsage('acme', ev());
    batcher.addUsage('globex', ev());
    await microtasks();
    expect(out.map((b) => (b.kind === 'usage' ? b.tenantId : ''))).toEqual(['acme', 'globex']);
    vi.advanceTimersByTime(5);
    expect(out.map((b) => (b.kind === 'usage' ? b.tenantId : ''))).toEqual(['acme', 'globex', 'acme']);
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
