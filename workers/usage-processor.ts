/**
 * Decides a UsageBatch: validate, evaluate every event against the tenant's compiled index,
 * persist usage + alerts + discovered devices in one transaction (idempotent by event id), then
 * answer the tower with exactly one DecisionBatch.
 */
import type { Decision, DecisionBatch } from '../shared/mqtt/payloads.js';
import { decodePayload, encodePayload, UsageBatchSchema } from '../shared/mqtt/payloads.js';
import { topics } from '../shared/mqtt/topics.js';
import type { UplinkMessage } from '../shared/mqtt/transport.js';
import { evaluateUsage } from '../shared/policy/evaluate-usage.js';
import type { DecidedUsage, StoredDecision } from '../shared/store/port.js';
import { decisionBatchId } from '../shared/mqtt/payloads.js';
import type { TenantPolicyState } from './policy-engine.js';
import { dropUplink, type WorkerContext } from './context.js';
import type { PolicyEngine } from './policy-engine.js';
import { PlanRateLimiter } from './plan-rate-limiter.js';
import type { RemediationEngine } from './remediation/remediation-engine.js';
import { UsageWriter } from './usage-writer.js';

export function createUsageProcessor(ctx: WorkerContext, engine: PolicyEngine, remediation: RemediationEngine) {
  const writer = new UsageWriter(ctx.store);
  const limiter = new PlanRateLimiter(ctx.now);
  return async function processUsage(msg: UplinkMessage, tenantId: string): Promise<void> {
    const decoded = decodePayload(UsageBatchSchema, msg.payload);
    if (!decoded.ok) return dropUplink(ctx, msg, 'invalid_payload', decoded.error);
    const batch = decoded.value;

    const state = await engine.stateFor(tenantId);
    if (!state) return dropUplink(ctx, msg, 'unknown_tenant');
    const { index } = state;

    const now = ctx.now();
    const decisions: Decision[] = [];
    const rejected: DecisionBatch['rejected'] = [];
    const records: DecidedUsage[] = [];
    // The plan's event rate, at ingest: events beyond it are refused, not decided.
    const allowed = limiter.take(tenantId, state.plan.max_events_per_s, batch.events.length);
    for (const [i, ev] of batch.events.entries()) {
      if (i >= allowed) {
        rejected.push({ event_id: ev.id, reason: 'plan_rate_limited' });
        continue;
      }
      const r = evaluateUsage(index, ev, engine.tenantOfDevice);
      if (r.kind === 'rejected') {
        rejected.push({ event_id: ev.id, reason: r.reason });
        continue;
      }
      const d = r.decision;
      decisions.push(d);
      records.push({
        id: ev.id,
        tenant_id: tenantId,
        tower_id: msg.tower_id,
        batch_id: batch.id,
        device_id: ev.device_id,
        user_id: r.user_id,
        app: ev.app,
        action: ev.action,
        bytes: ev.bytes ?? null,
        ts: ev.ts,
        received_at: msg.received_at,
        effect: d.effect,
        reason: d.reason,
        rule_id: d.rule_id,
        policy_id: d.policy_id,
        policy_version: index.version,
        severity: d.severity,
      });
    }

    const result = records.length
      ? await writer.record({
          tenant_id: tenantId,
          tower_id: msg.tower_id,
          batch_id: batch.id,
          now,
          alert_window_s: state.alertWindowS,
          records,
        })
      : null;

    // Events stored before (a redelivery, or a batch re-processed after a worker died) are
    // answered with the decision stored the first time, so the tower never sees two answers.
    if (result && result.stored_decisions.length > 0) answerWithStored(decisions, result.stored_decisions, state);

    const answer: DecisionBatch = {
      v: 1,
      // Derived, not minted: a re-decided batch carries the same id and the agent applies it once.
      id: decisionBatchId(batch.id),
      batch_id: batch.id,
      policy_version: index.version,
      decided_at: ctx.now(),
      decisions,
      rejected,
    };
    await ctx.downlink.publish(topics.decisions(tenantId, msg.tower_id), encodePayload(answer));

    const c = ctx.counters;
    c.inc('usage_batches_total');
    let denied = 0;
    for (const d of decisions) if (d.effect === 'deny') denied++;
    // Decisions sent, redeliveries included; first-time stores are usage_events_stored_total.
    if (denied) c.inc('decisions_sent_total', { effect: 'deny' }, denied);
    if (decisions.length > denied) c.inc('decisions_sent_total', { effect: 'allow' }, decisions.length - denied);
    if (rejected.length) {
      const byReason = new Map<string, number>();
      for (const r of rejected) byReason.set(r.reason, (byReason.get(r.reason) ?? 0) + 1);
      for (const [reason, n] of byReason) c.inc('usage_events_rejected_total', { tower: msg.tower_id, reason }, n);
    }
    if (!result) return;
    if (result.inserted) c.inc('usage_events_stored_total', undefined, result.inserted);
    if (result.duplicates) c.inc('usage_events_duplicate_total', undefined, result.duplicates);
    if (result.inserted) ctx.bus.publish('usage.decided', { tenant_id: tenantId, tower_id: msg.tower_id, records });
    for (const alert of result.alerts_opened) ctx.bus.publish('alert.opened', { tenant_id: tenantId, alert });
    for (const alert of result.alerts_updated) ctx.bus.publish('alert.updated', { tenant_id: tenantId, alert });
    for (const device of result.discovered) ctx.bus.publish('device.discovered', { tenant_id: tenantId, device });
    // After the answer went out: remediation never delays the tower's decisions.
    if (result.inserted) await remediation.onDecided(tenantId, msg.tower_id, state, records);
  };
}

/** Replaces the fresh decisions of already-stored events with the stored ones (same order). */
function answerWithStored(decisions: Decision[], stored: StoredDecision[], state: TenantPolicyState): void {
  const byId = new Map(stored.map((s) => [s.id, s]));
  for (let i = 0; i < decisions.length; i++) {
    const d = decisions[i]!;
    const s = byId.get(d.event_id);
    if (!s) continue;
    const severity = s.effect === 'deny' && s.policy_id !== null ? (state.policySeverity(s.policy_id) ?? d.severity) : null;
    decisions[i] = { ...d, effect: s.effect, reason: s.reason, rule_id: s.rule_id, policy_id: s.policy_id, severity };
  }
}
