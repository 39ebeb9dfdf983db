/**
 * The pass/fail rule and the figures of a fleet report at their edges: an event the cloud
 * rejected got no decision and a decision the agent gave twice is a defect, so neither passes;
 * events still in flight at the end fail, while local decisions during an outage do not; the
 * latency percentiles hold on 0, 1 and 2 samples and on all-equal samples (never above the max,
 * never 0 for a decided event).
 */
import { describe, expect, it } from 'vitest';
import type { Decision } from '../shared/mqtt/payloads.js';
import { FleetRecorder } from './report.js';

const decision = (event_id: string, effect: 'allow' | 'deny' = 'allow'): Decision =>
  ({ event_id, effect, reason: 'default', rule_id: null, policy_id: null, policy_version: 1 }) as unknown as Decision;

const run = { scenario: 's', seed: 1, startedAt: new Date(0), tenants: 1, offeredRateEps: 10, playbackS: 1, drainS: 0, ends: [{ dropped: 0, lost: 0 }] };

describe('FleetRecorder: what passes', () => {
  it('every event decided once: passed', () => {
    const rec = new FleetRecorder(['t0'], () => 0);
    rec.recordSent('a', 0, false, true);
    rec.recordSent('v', 0, true, true);
    rec.recordDecision(decision('a'));
    rec.recordDecision(decision('v', 'deny'), 5, true);
    expect(rec.report(run)).toMatchObject({ events_decided: 2, local_decisions: 1, violations_caught: 1, passed: true });
  });

  it('an event the cloud rejected got no decision: failed', () => {
    const rec = new FleetRecorder(['t0'], () => 0);
    rec.recordSent('a', 0, false, true);
    rec.recordSent('b', 0, false, true);
    rec.recordDecision(decision('a'));
    rec.recordRejected('b');
    expect(rec.report(run)).toMatchObject({ events_decided: 1, rejected_events: 1, events_without_decision: 0, passed: false });
  });

  it('an event decided twice: failed', () => {
    const rec = new FleetRecorder(['t0'], () => 0);
    rec.recordSent('a', 0, false, true);
    rec.recordDecision(decision('a'));
    rec.recordDecision(decision('a'));
    expect(rec.report(run)).toMatchObject({ events_decided: 1, decisions_received: 2, duplicate_decisions: 1, passed: false });
  });

  it('an event still in flight at the end: failed, and counted at its tower', () => {
    const rec = new FleetRecorder(['t0', 't1'], () => 0);
    rec.recordSent('a', 1, false, true);
    const r = rec.report({ ...run, ends: [{ dropped: 0, lost: 0 }, { dropped: 0, lost: 0 }] });
    expect(r).toMatchObject({ events_without_decision: 1, passed: false });
    expect(r.per_tower[1]).toMatchObject({ events_without_decision: 1 });
  });
});

describe('FleetRecorder: latency percentiles at the edges', () => {
  const latencies = (ms: number[]): ReturnType<FleetRecorder['report']>['latency_ms'] => {
    let now = 0;
    const rec = new FleetRecorder(['t0'], () => now);
    ms.forEach((_, i) => rec.recordSent(`e${i}`, 0, false, true, 0));
    ms.forEach((m, i) => {
      now = m;
      rec.recordDecision(decision(`e${i}`));
    });
    const r = rec.report(run).latency_ms;
    rec.close();
    return r;
  };

  it('no sample: all 0', () => {
    expect(latencies([])).toEqual({ p50: 0, p90: 0, p99: 0, max: 0 });
  });

  it('one sample: every percentile is that sample', () => {
    const r = latencies([12.5]);
    expect(r.max).toBeCloseTo(12.5, 1);
    for (const p of [r.p50, r.p90, r.p99]) expect(p).toBe(r.max);
  });

  it('two samples: p50 the lower, p90/p99/max the higher', () => {
    const r = latencies([3, 40]);
    expect(r.p50).toBeCloseTo(3, 1);
    expect(r.p90).toBeCloseTo(40, 0);
    expect(r.p99).toBe(r.max);
    expect(r.max).toBeCloseTo(40, 0);
  });

  it('all equal: every percentile equals the max, none above it', () => {
    const r = latencies(Array.from({ length: 100 }, () => 44.2));
    expect(r).toEqual({ p50: r.max, p90: r.max, p99: r.max, max: r.max });
    expect(r.max).toBeCloseTo(44.2, 1);
  });
});
