/**
 * FleetRecorder's live progress is per interval (a latency spike shows in the interval it happens
 * in, not averaged into the whole run) and its command counts are per tenant and distinct, so
 * they can be held against the control plane's own count.
 */
import { describe, expect, it } from 'vitest';
import type { Decision } from '../shared/mqtt/payloads.js';
import { FleetRecorder, formatReport } from './report.js';

const decision = (event_id: string): Decision =>
  ({ event_id, effect: 'allow', reason: 'default', rule_id: null, policy_id: null, policy_version: 1 }) as unknown as Decision;

const run = { scenario: 's', seed: 1, startedAt: new Date(0), tenants: 2, offeredRateEps: 10, playbackS: 2, drainS: 0, ends: [{ dropped: 0, lost: 0 }, { dropped: 0, lost: 0 }] };

describe('FleetRecorder', () => {
  it('reports the p99 of each interval, not of the run so far, and names offline towers', () => {
    let now = 0;
    const rec = new FleetRecorder(['t0', 't1'], () => now);
    // Interval 1: ten events answered in 10 ms.
    for (let i = 0; i < 10; i++) rec.recordSent(`a${i}`, 0, false, true, 0);
    now = 10;
    for (let i = 0; i < 10; i++) rec.recordDecision(decision(`a${i}`));
    const first = rec.progress(1, []);
    expect(first).toMatchObject({ elapsed_s: 1, sent: 10, decided: 10, decided_in_interval: 10, offline_towers: [], outages_started: [] });
    expect(first.p99_ms).toBeCloseTo(10, 1);
    // Interval 2: an outage replay, ten events answered after 2 s.
    rec.recordOutage(1);
    for (let i = 0; i < 10; i++) rec.recordSent(`b${i}`, 1, false, true, 1000);
    now = 3000;
    for (let i = 0; i < 10; i++) rec.recordDecision(decision(`b${i}`));
    const second = rec.progress(2, ['t1']);
    expect(second).toMatchObject({ decided: 20, decided_in_interval: 10, offline_towers: ['t1'], outages_started: ['t1'] });
    expect(second.p99_ms).toBeGreaterThanOrEqual(1990);
    // Interval 3: nothing decided, so no p99 (not the run's).
    expect(rec.progress(3)).toMatchObject({ decided_in_interval: 0, p99_ms: 0, offline_towers: [], outages_started: [] });
    // The final report keeps the whole run's percentiles.
    expect(rec.report(run).latency_ms.p50).toBeLessThan(1000);
    expect(rec.report(run).latency_ms.max).toBeGreaterThanOrEqual(1990);
    rec.close();
  });

  it('never reports a percentile above the largest latency recorded (HDR buckets round up)', () => {
    let now = 0;
    const rec = new FleetRecorder(['t0'], () => now);
    // One latency of 44.2 ms: its HDR bucket's highest value is 44.22 ms.
    rec.recordSent('e0', 0, false, true, 0);
    now = 44.2;
    rec.recordDecision(decision('e0'));
    const { latency_ms } = rec.report({ ...run, ends: [{ dropped: 0, lost: 0 }] });
    expect(latency_ms.max).toBe(44.2);
    expect(latency_ms.p99).toBe(44.2);
    expect(latency_ms.p50).toBe(44.2);
    expect(rec.progress(1).p99_ms).toBe(44.2);
    rec.close();
  });

  it('counts distinct remediation commands per tenant, received and applied', () => {
    const rec = new FleetRecorder(['t0']);
    rec.recordRemediationExpected('d1');
    rec.recordCommand('tenant-b', 'c1', 'd1', 'applied');
    rec.recordCommand('tenant-b', 'c1', 'd1', 'applied'); // a redelivery of the same command
    rec.recordCommand('tenant-b', 'c2', 'd1', 'applied'); // an escalation for the same device
    rec.recordCommand('tenant-a', 'c3', 'd9', 'failed');
    const r = rec.report({ ...run, ends: [{ dropped: 0, lost: 0 }] });
    expect(r).toMatchObject({
      remediations_expected: 1,
      remediations_acked: 1,
      commands_received: 3,
      commands_applied: 2,
      commands_per_tenant: [
        { tenant_id: 'tenant-a', received: 1, applied: 0 },
        { tenant_id: 'tenant-b', received: 2, applied: 2 },
      ],
    });
    expect(formatReport(r)).toMatch(/remediation commands\s+3 received at towers, 2 applied/);
    rec.close();
  });

  it('counts local decisions, reconciliations, disagreements and lost events; a lost event fails the run', () => {
    const rec = new FleetRecorder(['t0', 't1']);
    for (const id of ['a', 'b', 'c']) rec.recordSent(id, 1, false, true);
    rec.recordDecision(decision('a'), undefined, true);
    rec.recordDecision(decision('b'), undefined, true);
    rec.recordDecision(decision('c'));
    rec.recordReconciled(false);
    rec.recordReconciled(true);
    const ok = rec.report({ ...run, ends: [{ dropped: 0, lost: 0 }, { dropped: 0, lost: 0 }] });
    expect(ok).toMatchObject({ local_decisions: 2, reconciled_events: 2, disagreements: 1, events_lost: 0, passed: true });
    expect(ok.per_tower[1]).toMatchObject({ events_decided_locally: 2, events_lost: 0 });
    expect(formatReport(ok)).toMatch(/local decisions\s+2 \(reconciled 2, disagreements 1\)/);
    const lost = rec.report({ ...run, ends: [{ dropped: 0, lost: 0 }, { dropped: 1, lost: 3 }] });
    expect(lost).toMatchObject({ events_lost: 3, passed: false });
    rec.close();
  });
});
