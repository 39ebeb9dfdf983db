/**
 * Wall-clock steps (NTP, or GPS time acquired at a tower) while the agent runs, with fake timers:
 * deadlines must run on elapsed time. On the wall clock, a step back by an hour held events and
 * local decisions by deadline an hour longer, and a step forward opened the bundle gate before a
 * document being assembled had all its parts (its events then taken for unknown devices).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import type { Decision } from '../shared/mqtt/payloads.js';
import type { Batcher } from './batcher.js';
import { BundleGate } from './bundle-gate.js';
import type { EdgePolicy } from './edge-policy.js';
import type { EventRouter } from './event-router.js';
import { HeldEvents, type HeldEvent } from './held-events.js';
import { LocalAnswers } from './local-answers.js';
import { UsagePath } from './usage-path.js';

const HOUR = 3_600_000;
const held = (id: string): HeldEvent => ({ id, ts: 0, usage: { device_id: 'd1', app: 'mail', action: 'send' }, heldAt: Date.now() });

describe('deadlines across wall-clock steps', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('a held event expires waitMs after it was held, though the clock stepped back an hour meanwhile', () => {
    const expired: string[] = [];
    const h = new HeldEvents({ max: 10, waitMs: 10_000, onExpired: (events) => expired.push(...events.map((e) => e.id)), onOverflow: () => undefined });
    h.hold(held('e1'));
    vi.advanceTimersByTime(4_000);
    h.hold(held('e2'));
    vi.setSystemTime(Date.now() - HOUR);
    vi.advanceTimersByTime(6_000);
    expect(expired).toEqual(['e1']);
    vi.advanceTimersByTime(4_000);
    expect(expired).toEqual(['e1', 'e2']);
    expect(h.size).toBe(0);
  });

  it('the gate stays shut while a document is assembled, though the clock stepped a day forward; it opens at waitMs of elapsed time', () => {
    let ready = 0;
    const g = new BundleGate({
      settleMs: 300,
      waitMs: 10_000,
      maxHeld: 10,
      onRelease: () => undefined,
      onExpired: () => undefined,
      onOverflow: () => undefined,
      onReady: () => void ready++,
      assembling: () => true,
    });
    g.connected();
    vi.setSystemTime(Date.now() + 24 * HOUR);
    vi.advanceTimersByTime(300);
    expect(g.ready).toBe(false);
    vi.advanceTimersByTime(9_699);
    expect(g.ready).toBe(false);
    vi.advanceTimersByTime(1);
    expect(g.ready).toBe(true);
    expect(ready).toBe(1);
    g.close();
  });

  it("an event whose cloud answer is late is decided locally at the deadline, though the clock stepped back an hour meanwhile", () => {
    const newId = createIdFactory();
    const answered: Decision[] = [];
    const decision = (id: string): Decision => ({ event_id: id, device_id: 'd1', effect: 'allow', reason: 'default', rule_id: null, policy_id: null, severity: null });
    const path = new UsagePath({
      policy: { decide: (_r: unknown, e: { id: string }) => ({ ok: true, decision: decision(e.id), version: 4 }) } as unknown as EdgePolicy,
      batcher: { addUsage: () => undefined } as unknown as Batcher,
      router: { blocked: () => false, answer: (_t: string, d: Decision) => void answered.push(d) } as unknown as EventRouter,
      local: new LocalAnswers(10),
      journal: null,
      feed: () => null,
      push: () => undefined,
      newId,
      now: Date.now,
      online: () => true,
      deadlineMs: 1000,
      reconcileMax: 10,
      awaitingMax: 10,
      onCloud: () => undefined,
      onReject: () => undefined,
      onReconciled: () => undefined,
    });
    const id = newId();
    expect(path.usage('acme', 'profile-1', id, Date.now(), { device_id: 'd1', app: 'mail', action: 'send' })).toBe('awaiting');
    vi.setSystemTime(Date.now() - HOUR);
    vi.advanceTimersByTime(999);
    expect(answered).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(answered.map((d) => d.event_id)).toEqual([id]);
    expect(path.awaiting).toBe(0);
  });
});
