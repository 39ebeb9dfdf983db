/**
 * Turns rule denies into remediation commands for tenants whose plan includes auto-remediation
 * (DESIGN §4). A rule's `remediation` fires on a violation; its `escalation` fires a stronger
 * action once one device violates the rule `threshold` times within `window_s` at one tower. An
 * action still in force for the same device (and app) at the same tower is not issued again, so a
 * burst of violations becomes one command, not hundreds. Free-plan tenants get alerts only.
 *
 * Idempotent, so a batch processed twice (QoS 1 redelivery, a queue job re-run after a worker
 * died, N workers) issues each command once: violations are counted once per event id (also
 * after the escalation they took part in reset the window), the command id is derived from the
 * tenant, the event and the kind of remediation, the action is claimed by that command id, and
 * the store creates a command id once (one issued under the id form before the tenant scoping is
 * found too). The state (windows, actions in force) is a port shared by every worker
 * (shared/workflow/remediation-state.ts).
 *
 * Windows and claims are keyed by tower as well: towers are shared infrastructure, so what one
 * tower reports can neither push a device over a threshold at another tower nor suppress another
 * tower's remediation.
 */
import { derivedCommandId } from '../../shared/commands/command-id.js';
import type { CommandSource, PolicyRule, Remediation } from '../../shared/domain.js';
import type { WorkerContext } from '../context.js';
import type { TenantPolicyState } from '../policy-engine.js';

/** A violation to consider: a stored deny by a rule. */
export interface Violation {
  event_id: string;
  device_id: string;
  app: string;
  action: string;
  rule_id: string;
}

export class RemediationEngine {
  readonly #ctx: WorkerContext;

  constructor(ctx: WorkerContext) {
    this.#ctx = ctx;
  }

  async onViolations(tenantId: string, towerId: string, state: TenantPolicyState, violations: Violation[]): Promise<void> {
    for (const v of violations) {
      const rule = state.rules.get(v.rule_id);
      if (!rule || (!rule.remediation && !rule.escalation)) continue;
      if (!state.plan.auto_remediation) {
        this.#ctx.counters.inc('remediations_skipped_total', { reason: 'plan' });
        continue;
      }
      await this.#consider(tenantId, towerId, rule, v);
    }
  }

  async #consider(tenantId: string, towerId: string, rule: PolicyRule, v: Violation): Promise<void> {
    const now = this.#ctx.now();
    if (rule.escalation) {
      const key = { tenant_id: tenantId, tower_id: towerId, device_id: v.device_id, rule_id: rule.id };
      const n = await this.#ctx.remediationState.countViolation(key, v.event_id, now, rule.escalation.window_s * 1000);
      // Taken out of the count by an escalation's reset: this is a batch processed again after
      // that escalation, whose violations were remediated then (by it, or before it, as each came).
      if (n === 0) {
        this.#ctx.counters.inc('remediations_skipped_total', { reason: 'already_escalated' });
        return;
      }
      if (n >= rule.escalation.threshold) {
        // Issue first: if this process dies before the reset, a re-run finds the same window
        // (the event is counted once) and issues the same command id again, i.e. nothing new.
        await this.#issue(tenantId, towerId, v, rule.id, rule.escalation.remediation, 'escalation', now);
        await this.#ctx.remediationState.resetViolations(key);
        return;
      }
    }
    if (rule.remediation) await this.#issue(tenantId, towerId, v, rule.id, rule.remediation, 'auto', now);
  }

  async #issue(
    tenantId: string,
    towerId: string,
    v: Violation,
    ruleId: string,
    remediation: Remediation,
    source: CommandSource,
    now: number,
  ): Promise<void> {
    const app = remediation.type === 'block_app' ? v.app : null;
    // Scoped by tenant: event ids are chosen by towers and unique per tenant only (usage is keyed by
    // tenant), while a command id is unique platform-wide, so another tenant's equal event id must
    // not collide with it. (Not by tower: within a tenant an event id is one event, stored once.)
    const commandId = derivedCommandId(v.event_id, `${tenantId}\u0000${source}:${remediation.type}`);
    const claim = await this.#ctx.remediationState.claimAction(
      { tenant_id: tenantId, tower_id: towerId, device_id: v.device_id, type: remediation.type, app },
      commandId,
      now,
      now + remediation.duration_s * 1000,
    );
    if (!claim.granted) {
      this.#ctx.counters.inc('remediations_skipped_total', { reason: 'already_active' });
      return;
    }
    if (await this.#issuedUnderLegacyId(tenantId, v, `${source}:${remediation.type}`)) {
      this.#ctx.counters.inc('remediations_skipped_total', { reason: 'already_issued' });
      return;
    }
    await this.#ctx.commands.issue({
      id: commandId,
      tenant_id: tenantId,
      tower_id: towerId,
      device_id: v.device_id,
      type: remediation.type,
      app,
      duration_s: remediation.duration_s,
      reason: `${source === 'escalation' ? 'escalation of ' : ''}rule ${ruleId}: ${v.app}/${v.action} denied`,
      source,
      rule_id: ruleId,
    });
  }

  /**
   * Versions before command ids were scoped by tenant derived them from the event and the kind
   * alone. A batch they processed and that comes again after the upgrade (a redelivery, a queue
   * job re-run, an embedded restart that lost the claims) finds its command under that id. Read
   * within the tenant (a legacy id may be another tenant's: the collision the scoping fixed) and
   * for the same device; one read by key, made only when the claim was granted, i.e. about once
   * per command rather than once per violation.
   */
  async #issuedUnderLegacyId(tenantId: string, v: Violation, kind: string): Promise<boolean> {
    const legacy = await this.#ctx.store.commands.get(tenantId, derivedCommandId(v.event_id, kind));
    return legacy !== null && legacy.device_id === v.device_id;
  }
}
