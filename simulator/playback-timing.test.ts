/**
 * When the fleet's playback observes each planned event (fleet.ts `play`), on fake timers: at
 * its planned time to within the timer's 1 ms, never before it — not in synchronized slices,
 * which made every tower send at the same instant — and, at a low rate, without ticking every
 * millisecond in between. Every time here is the fake clock's: the tests check when the plan's
 * events are handed to the agents, never how fast anything runs (that is bench (b)).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { PlannedEvent } from './playback.js';
import { play } from './fleet.js';

/** Uniform arrivals at `rate` for `durationS`; remembers each event's planned offset (s). */
function uniformPlan(rate: number, durationS: number) {
  let clock = 0;
  const planned: number[] = [];
  let n = 0;
  return {
    planned,
    plan: {
      durationS,
      violationTimes: [] as number[],
      nextArrival: () => (clock += 1 / rate),
      nextEvent: (): PlannedEvent => {
        planned.push(clock);
        return { tenantIndex: 0, deviceId: `d${n++}`, app: 'slack', action: 'open', towerIndex: n % 2, violation: false, remediation: null };
      },
      nextViolation: (): PlannedEvent => {
        throw new Error('no violations planned');
      },
    },
  };
}

function fakeFleet(t0: number) {
  const observedAt: number[] = [];
  const agent = {
    observe: () => {
      observedAt.push((performance.now() - t0) / 1000);
      return { event_id: `e${observedAt.length}`, tenant_id: 't', answered_locally: false, held: false };
    },
    simulateOutage: () => undefined,
  };
  const recorder = { recordSent: () => undefined, recordRemediationExpected: () => undefined, recordOutage: () => undefined };
  return { observedAt, agents: [agent, agent], recorder };
}

describe('fleet playback timing', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('observes every event at its planned time, to within 1 ms, never early', async () => {
    const { plan, planned } = uniformPlan(2000, 0.5);
    const fleet = fakeFleet(performance.now());
    const done = play(plan, fleet.agents, fleet.recorder, [], 1);
    await vi.advanceTimersByTimeAsync(600);
    await done;
    expect(fleet.observedAt).toHaveLength(999);
    const lateness = fleet.observedAt.map((at, i) => at - planned[i]!);
    expect(Math.min(...lateness)).toBeGreaterThanOrEqual(-1e-9);
    expect(Math.max(...lateness)).toBeLessThanOrEqual(0.001 + 1e-9);
    // 5 ms slices would have put them on 100 distinct instants; 1 ms ticks spread them over ~500.
    expect(new Set(fleet.observedAt.map((t) => Math.round(t * 1e6))).size).toBeGreaterThan(400);
  });

  it('at a low rate sleeps until the next event instead of ticking every millisecond', async () => {
    const { plan, planned } = uniformPlan(10, 2);
    const fleet = fakeFleet(performance.now());
    const timers = vi.spyOn(globalThis, 'setTimeout');
    const done = play(plan, fleet.agents, fleet.recorder, [], 1);
    await vi.advanceTimersByTimeAsync(2100);
    await done;
    expect(fleet.observedAt).toHaveLength(19);
    fleet.observedAt.forEach((at, i) => expect(at - planned[i]!).toBeLessThanOrEqual(0.001 + 1e-9));
    // One tick per event (100 ms apart, the longest sleep), not 2,000.
    expect(timers.mock.calls.length).toBeLessThan(40);
  });
});
