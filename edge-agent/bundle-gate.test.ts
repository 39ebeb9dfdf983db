/**
 * When the gate lets events of unmapped devices through: after a quiet period with no bundle
 * message, but not while a document whose head has come still misses parts — up to waitMs.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BundleGate } from './bundle-gate.js';

function gate(assembling: () => boolean) {
  const released: string[] = [];
  let ready = 0;
  const g = new BundleGate({
    settleMs: 300,
    waitMs: 10_000,
    maxHeld: 10,
    onRelease: (h) => released.push(h.id),
    onExpired: () => undefined,
    onOverflow: () => undefined,
    onReady: () => void ready++,
    assembling,
  });
  return { g, released, ready: () => ready };
}

const held = (id: string) => ({ id, ts: 0, usage: { device_id: 'd1', app: 'a', action: 'b' }, heldAt: Date.now() });

describe('BundleGate', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('opens after the quiet period when nothing is being assembled', () => {
    const { g, released, ready } = gate(() => false);
    g.connected();
    g.hold(held('e1'));
    vi.advanceTimersByTime(299);
    expect(g.ready).toBe(false);
    vi.advanceTimersByTime(1);
    expect(g.ready).toBe(true);
    expect(released).toEqual(['e1']);
    expect(ready()).toBe(1);
  });

  it('stays shut past the quiet period while a head misses parts, and opens once they are held', () => {
    let assembling = true;
    const { g, released } = gate(() => assembling);
    g.connected();
    g.hold(held('e1'));
    // Parts pause longer than the quiet period: still assembling, so still shut.
    vi.advanceTimersByTime(2_000);
    expect(g.ready).toBe(false);
    expect(released).toEqual([]);
    // The last part arrives.
    assembling = false;
    g.bundleArrived(() => false);
    vi.advanceTimersByTime(300);
    expect(g.ready).toBe(true);
    expect(released).toEqual(['e1']);
  });

  it('opens at waitMs even if a document never completes', () => {
    const { g } = gate(() => true);
    g.connected();
    vi.advanceTimersByTime(9_999);
    expect(g.ready).toBe(false);
    vi.advanceTimersByTime(1);
    expect(g.ready).toBe(true);
  });

  it('open but still assembling: events of unmapped devices are held until a part maps them or the document completes', () => {
    let assembling = true;
    const { g, released } = gate(() => assembling);
    g.connected();
    vi.advanceTimersByTime(5_000);
    g.hold(held('before'));
    vi.advanceTimersByTime(5_000);
    expect(g.ready).toBe(true);
    // The device may be in a missing part: neither the held event nor a new one goes as unknown.
    expect(released).toEqual([]);
    expect(g.holding).toBe(true);
    g.hold(held('after'));
    // A part that maps 'after' releases it alone.
    g.bundleArrived((e) => e.id === 'after');
    expect(released).toEqual(['after']);
    // The document completes: the rest go (to be routed, as unknown if still unmapped).
    assembling = false;
    expect(g.holding).toBe(false);
    g.bundleArrived(() => false);
    expect(released).toEqual(['after', 'before']);
  });

  it('a document that never completes holds events for waitMs after the gate opened, not for ever', () => {
    const { g } = gate(() => true);
    g.connected();
    vi.advanceTimersByTime(10_000);
    expect(g.ready).toBe(true);
    expect(g.holding).toBe(true);
    vi.advanceTimersByTime(9_999);
    expect(g.holding).toBe(true);
    vi.advanceTimersByTime(1);
    expect(g.holding).toBe(false);
  });

  it('open and assembling: a held event waits at most waitMs, then expires to the caller', () => {
    const expired: string[] = [];
    const g = new BundleGate({
      settleMs: 300,
      waitMs: 10_000,
      maxHeld: 10,
      onRelease: () => undefined,
      onExpired: (events) => expired.push(...events.map((e) => e.id)),
      onOverflow: () => undefined,
      onReady: () => undefined,
      assembling: () => true,
    });
    g.connected();
    vi.advanceTimersByTime(10_000);
    expect(g.ready).toBe(true);
    g.hold(held('late'));
    vi.advanceTimersByTime(9_999);
    expect(expired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(expired).toEqual(['late']);
  });
});
