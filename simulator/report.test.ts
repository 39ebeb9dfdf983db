/**
 * FleetRecorder's live progress is per interval (a latency spike shows in the interval it happens
 * in, not averaged into the whole run); its command counts are per tenant and distinct, so they
 * can be held against the control plane's own count; and an expected remediation is acked only by
 * a command that covers it, the report saying how many commands the acked violations share.
 */
import { describe, expect, it } from 'vitest';
import type { Command, Decision } from '../shared/mqtt/payloads.js';
import { FleetRecorder, formatReport } from './report.js';

const decision = (event_id: string): Decision =>
  ({ event_id, effect: 'allow', reason: 'default', rule_id: null, policy_id: null, policy_version: 1 }) as unknown as Decision;

/** A remediation command as a tower receives it (the fields the recorder reads). */
const cmd = (id: string, type: Command['type'], device_id: string, app?: string, duration_s?: number): Pick<Command, 'id' | 'type' | 'device_id' | 'app' | 'duration_s'> => ({
  id,
  type,
  device_id,
  ...(app !== undefined && { app }),
  ...(duration_s !== undefined && { duration_s }),
});

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
    rec.recordRemediationExpected(0, 'd1', 'dropbox', 'block_app');
    rec.recordCommand(0, 'tenant-b', cmd('c1', 'block_app', 'd1', 'dropbox'), 'applied');
    rec.recordCommand(0, 'tenant-b', cmd('c1', 'block_app', 'd1', 'dropbox'), 'applied'); // a redelivery of the same command
    rec.recordCommand(0, 'tenant-b', cmd('c2', 'block_device', 'd1'), 'applied'); // an escalation for the same device
    rec.recordCommand(0, 'tenant-a', cmd('c3', 'block_app', 'd9', 'dropbox'), 'failed');
    const r = rec.report({ ...run, ends: [{ dropped: 0, lost: 0 }] });
    expect(r).toMatchObject({
      remediations_expected: 1,
      remediations_acked: 1,
      remediations_acked_by_commands: 1,
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

  // The demo's "remediations exp/acked 10 / 10" beside "9 received at towers, 9 applied": one
  // device violated the same rule twice at its tower, the second time during the block the
  // first brought, so the control plane (rightly) sent no second command. The report must say
  // that rather than leave two different units side by side.
  it('acks a violation during a block in force by that block, and says how many commands acked the violations', () => {
    let now = 0;
    const rec = new FleetRecorder(['t0'], () => now);
    rec.recordRemediationExpected(0, 'd1', 'dropbox', 'block_app');
    now = 100;
    rec.recordCommand(0, 'T', cmd('c1', 'block_app', 'd1', 'dropbox', 600), 'applied');
    rec.recordRemediationExpected(0, 'd2', 'tiktok', 'block_app');
    now = 200;
    rec.recordCommand(0, 'T', cmd('c2', 'block_app', 'd2', 'tiktok', 300), 'applied');
    now = 11_000;
    rec.recordRemediationExpected(0, 'd1', 'dropbox', 'block_app'); // c1 still holds
    const r = rec.report({ ...run, ends: [{ dropped: 0, lost: 0 }] });
    expect(r).toMatchObject({ remediations_expected: 3, remediations_acked: 3, remediations_acked_by_commands: 2, commands_received: 2, commands_applied: 2, passed: true });
    const text = formatReport(r);
    expect(text).toMatch(/remediations exp\/acked\s+3 \/ 3 \(violations, acked by 2 distinct commands; 1 violation came during a block already in force\)/);
    expect(text).toMatch(/remediation commands\s+2 received at towers, 2 applied/);
    rec.close();
  });

  it("acks a violation only by a command that covers it: same tower and device, its app's block or the device's, in force", async () => {
    let now = 0;
    const rec = new FleetRecorder(['t0', 't1'], () => now);
    rec.recordCommand(0, 'T', cmd('c1', 'block_app', 'd1', 'dropbox', 60), 'applied');
    // Another app of the same device: the dropbox block is not its remediation.
    rec.recordRemediationExpected(0, 'd1', 'tiktok', 'block_app');
    // The same device and app at another tower: that tower's remediation is its own.
    rec.recordRemediationExpected(1, 'd1', 'dropbox', 'block_app');
    // A command the tower could not apply acks nothing.
    rec.recordCommand(1, 'T', cmd('c2', 'block_app', 'd1', 'dropbox', 60), 'failed');
    // After the block's 60 s the tower has lifted it: a new violation needs a new command.
    now = 61_000;
    rec.recordRemediationExpected(0, 'd1', 'dropbox', 'block_app');
    expect(rec.report(run)).toMatchObject({ remediations_expected: 3, remediations_acked: 0, remediations_acked_by_commands: 0, passed: false });
    let settled = false;
    const waiting = rec.remediationsSettled().then(() => (settled = true));

    rec.recordCommand(1, 'T', cmd('c3', 'block_app', 'd1', 'dropbox', 60), 'applied');
    expect(rec.report(run)).toMatchObject({ remediations_acked: 1, remediations_acked_by_commands: 1 });
    // An escalation's block of the whole device covers both of tower 0's violations.
    rec.recordCommand(0, 'T', cmd('c4', 'block_device', 'd1', undefined, 3600), 'applied');
    await waiting;
    expect(settled).toBe(true);
    expect(rec.report(run)).toMatchObject({ remediations_expected: 3, remediations_acked: 3, remediations_acked_by_commands: 2, commands_applied: 3, passed: true });
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
