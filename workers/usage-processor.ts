/**
 * Decides a UsageBatch: validate, evaluate every event against the tenant's compiled index,
 * persist usage + alerts + discovered devices in one transaction (idempotent by event id), then
 * answer the tower with exactly one DecisionBatch.
 *
 * Reconciliation (issue #11): an event the tower decided itself (uplink down, or the answer late)
 * carries that local decision. The cloud still decides it here, authoritatively, and stores both;
 * where the effects differ the record is marked as a disagreement and counted, and a local allow
 * that the cloud denies is logged as `local_allow_overturned` (warn) for operators to alert on.
 */
import { hash } from 'node:crypto';
import type { Counters } from '../shared/metrics.js';
import type { Decision, DecisionBatch, UsageBatch } from '../shared/mqtt/payloads.js';
import { decodePayload, encodePayload, UsageBatchSchema } from '../shared/mqtt/payloads.js';
import { topics } from '../shared/mqtt/topics.js';
import type { UplinkMessage } from '../shared/mqtt/transport.js';
import { evaluateUsage } from '../shared/policy/evaluate-usage.js';
import type { DecidedUsage, RecordUsageResult, StoredDecision } from '../shared/store/port.js';
import type { UsageRecord } from '../shared/domain.js';
import { decisionBatchId } from '../shared/mqtt/payloads.js';
import type { TenantPolicyState } from './policy-engine.js';
import { dropUplink, type WorkerContext } from './context.js';
import type { PolicyEngine } from './policy-engine.js';
import type { RemediationEngine, Violation } from './remediation/remediation-engine.js';
import { decidedUsage, localFields } from '../shared/store/rules/usage-batch.js';
import { UsageWriter } from './usage-writer.js';

/** A tower counts as active for the tenant's fair share of its plan rate this long. */
export const PLAN_SHARE_WINDOW_MS = 10_000;
/**
 * How long a batch's plan grant is remembered (after its latest delivery), so a redelivery is
 * charged once and refused the same events: a QoS 1 resend after a reconnect, a copy through
 * another broker node, a job taken over after its worker died (BullMQ: within 60 s), and an
 * uplink job re-run every ≤ 5 s however long an outage lasts (uplink-consumer.ts). A redelivery
 * later than that is charged again. Each remembered grant costs ~250 bytes in Redis (measured):
 * 2 min at 2,000 batches/s is ~60 MB.
 */
export const PLAN_GRANT_MEMORY_MS = 2 * 60_000;

export function createUsageProcessor(ctx: WorkerContext, engine: PolicyEngine, remediation: RemediationEngine) {
  const writer = new UsageWriter(ctx.store);
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
    const records: Array<DecidedUsage & UsageRecord> = [];
    // The plan's event rate, at ingest: events beyond it are refused, not decided. The budget is
    // the tenant's, split fairly among its active towers, so one tower's flood cannot spend the
    // share the tenant's other towers use (shared/workflow/rate-budgets.ts).
    // Events the tower already decided itself (a replayed backlog, a late answer) are exempt: they
    // happened and were enforced, and refusing them would lose the record of them; the tower's
    // publish pacing and the broker's per-client limit still bound how fast they come.
    // A batch delivered again (QoS 1 resend, a job re-run or retried on another worker, a copy
    // through another broker node) is charged once: its take is named by its events, and a named
    // take repeated gets the first grant back, so the same events are refused and the same ones
    // decided (and answered as stored, below). Without that, the budget the first delivery spent
    // was spent again and events it decided came back `plan_rate_limited`.
    const rate = state.plan.max_events_per_s;
    const live = batch.events.reduce((n, e) => n + (e.local ? 0 : 1), 0);
    const grant =
      rate === null || live === 0
        ? { granted: live, repeated: false }
        : await ctx.budgets.takeSharedOnce(
            { group: `plan:${tenantId}`, member: msg.tower_id, rate_per_s: rate, active_window_ms: PLAN_SHARE_WINDOW_MS },
            { id: planTakeId(msg.tower_id, batch), remember_ms: PLAN_GRANT_MEMORY_MS },
            live,
            now,
          );
    const allowed = grant.granted;
    let liveSeen = 0;
    for (const ev of batch.events) {
      if (!ev.local && liveSeen++ >= allowed) {
        rejected.push({ event_id: ev.id, reason: 'plan_rate_limited' });
        continue;
      }
      const r = evaluateUsage(index, ev, engine.tenantOfDevice);
      if (r.kind === 'rejected') {
        rejected.push({ event_id: ev.id, reason: r.reason });
        continue;
      }
      decisions.push(r.decision);
      const record = decidedUsage(ev, r, index.version, { tenant_id: tenantId, tower_id: msg.tower_id, batch_id: batch.id, received_at: msg.received_at });
      records.push(Object.assign(record, localFields(record)));
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
    // QoS 0 where the tower is acknowledged only after this answer, on the connection it goes to:
    // the tower holds the answer once it holds the PUBACK, and without the PUBACK it sends the
    // batch again and gets the stored answer (above). Queuing the answer in the tower's session
    // as well cost three session-store writes per batch: at 10,000 events/s the control plane was
    // 81 % busy with them, 54 % without (bench b). Elsewhere (distributed: the PUBACK means
    // "queued"; ingest plugins) QoS 1.
    // Where the broker offers it, the answer goes out on the tower's connection at once, in the
    // same write as the PUBACK that follows (UplinkMessage.reply): one syscall, no loop iteration.
    const topic = topics.decisions(tenantId, msg.tower_id);
    const payload = encodePayload(answer);
    if (!msg.acked_after_answer) await ctx.downlink.publish(topic, payload, { qos: 1 });
    else if (!msg.reply?.(topic, payload)) await ctx.downlink.publish(topic, payload, { qos: 0 });

    const c = ctx.counters;
    // A delivery decided before is answered again but counted once: it is one when every event it
    // decided was stored before, or (nothing decided) when its plan take was a repeat. Its repeat
    // shows as usage_events_duplicate_total.
    const again = result ? result.inserted === 0 && result.duplicates > 0 : grant.repeated;
    if (!again) countDecided(c, msg.tower_id, decisions, rejected);
    if (!result) return;
    // The tower now serves this tenant (if it did not already): it gets the tenant's bundle.
    engine.serve(tenantId, msg.tower_id);
    reconcile(ctx, tenantId, msg.tower_id, records, result);
    if (result.inserted) {
      c.inc('usage_events_stored_total', undefined, result.inserted);
      // Rows were written: the store has space (again).
      ctx.storeFaults?.writable();
    }
    if (result.duplicates) c.inc('usage_events_duplicate_total', undefined, result.duplicates);
    if (result.inserted) ctx.bus.publish('usage.decided', { tenant_id: tenantId, tower_id: msg.tower_id, records });
    // Announced for live views; their webhook deliveries were committed with them (the store's
    // outbox), so a worker dying before these lines loses no webhook.
    for (const alert of result.alerts_opened) ctx.bus.publish('alert.opened', { tenant_id: tenantId, alert });
    for (const alert of result.alerts_updated) ctx.bus.publish('alert.updated', { tenant_id: tenantId, alert });
    for (const device of result.discovered) ctx.bus.publish('device.discovered', { tenant_id: tenantId, device });
    // After the answer went out: remediation never delays the tower's decisions. Stored denies of
    // re-processed events are considered again: remediation is idempotent, and a worker that died
    // between storing and remediating must not lose the command.
    const violations = violationsOf(records, result.stored_decisions);
    if (violations.length) await remediation.onViolations(tenantId, msg.tower_id, state, violations);
  };
}

/** Names a batch's plan take: the tower, the batch and its live events (their ids, in order). */
function planTakeId(towerId: string, batch: UsageBatch): string {
  let named = `${towerId}\0${batch.id}`;
  for (const e of batch.events) if (!e.local) named += `\0${e.id}`;
  // 128 bits of SHA-256: a tower cannot make a new batch pass for one it sent (and reuse that
  // grant). One-shot `hash`: 1.2 µs for a 5-event batch where a Hash object fed per id took 3.6.
  return hash('sha256', named, 'base64url').slice(0, 22);
}

function countDecided(c: Counters, towerId: string, decisions: Decision[], rejected: DecisionBatch['rejected']): void {
  c.inc('usage_batches_total');
  let denied = 0;
  for (const d of decisions) if (d.effect === 'deny') denied++;
  if (denied) c.inc('decisions_sent_total', { effect: 'deny' }, denied);
  if (decisions.length > denied) c.inc('decisions_sent_total', { effect: 'allow' }, decisions.length - denied);
  if (rejected.length) {
    const byReason = new Map<string, number>();
    for (const r of rejected) byReason.set(r.reason, (byReason.get(r.reason) ?? 0) + 1);
    for (const [reason, n] of byReason) c.inc('usage_events_rejected_total', { tower: towerId, reason }, n);
  }
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

/** Denies by a rule, as stored: fresh ones from `records`, re-processed ones from `stored`. */
function violationsOf(records: DecidedUsage[], stored: StoredDecision[]): Violation[] {
  const storedById = new Map(stored.map((s) => [s.id, s]));
  const out: Violation[] = [];
  for (const r of records) {
    const s = storedById.get(r.id);
    const effect = s ? s.effect : r.effect;
    const reason = s ? s.reason : r.reason;
    const ruleId = s ? s.rule_id : r.rule_id;
    if (effect !== 'deny' || reason !== 'rule' || ruleId === null) continue;
    out.push({ event_id: r.id, device_id: r.device_id, app: r.app, action: r.action, rule_id: ruleId });
  }
  return out;
}

/**
 * Counts the tower's local decisions this batch reconciled (first stored, or reported after the
 * event was) and their disagreements with the stored decision; logs a local allow the cloud denies.
 */
function reconcile(ctx: WorkerContext, tenantId: string, towerId: string, records: readonly UsageRecord[], result: RecordUsageResult): void {
  // The common batch has no local decision at all: nothing to index then (this runs per batch).
  if (result.local_recorded.length === 0 && !records.some((r) => r.local_effect !== null)) return;
  const duplicates = new Set(result.stored_decisions.map((s) => s.id));
  const reconciled: Array<{ record: UsageRecord; local: 'allow' | 'deny'; effect: 'allow' | 'deny' }> = [];
  for (const r of records) if (r.local_effect !== null && !duplicates.has(r.id)) reconciled.push({ record: r, local: r.local_effect, effect: r.effect });
  if (result.local_recorded.length > 0) {
    const byId = new Map(records.map((r) => [r.id, r]));
    for (const l of result.local_recorded) {
      const r = byId.get(l.id);
      if (r) reconciled.push({ record: r, local: l.local_effect, effect: l.effect });
    }
  }
  if (reconciled.length === 0) return;
  ctx.counters.inc('usage_local_decisions_reconciled_total', undefined, reconciled.length);
  for (const { record: r, local, effect } of reconciled) {
    if (local === effect) continue;
    ctx.counters.inc('usage_disagreements_total', { local_effect: local, cloud_effect: effect });
    if (local !== 'allow') continue;
    ctx.logger.warn(
      {
        event: 'local_allow_overturned',
        tenant_id: tenantId,
        tower_id: towerId,
        device_id: r.device_id,
        event_id: r.id,
        app: r.app,
        action: r.action,
        rule_id: r.rule_id,
        local_policy_version: r.local_policy_version,
        policy_version: r.policy_version,
      },
      'the tower allowed usage locally that the cloud denies',
    );
  }
}
