/**
 * Turns rule denies into remediation commands for tenants whose plan includes auto-remediation
 * (DESIGN §4). A rule's `remediation` fires on a violation; its `escalation` fires a stronger
 * action once one device violates the rule `threshold` times within `window_s`. An action that is
 * still in force for the same device (and app) is not issued again, so a burst of violations
 * becomes one command, not hundreds. Free-plan tenants get alerts only (raised by the store).
 */
import type { CommandSource, Remediation } from '../../shared/domain.js';
import type { DecidedUsage } from '../../shared/store/port.js';
import type { WorkerContext } from '../context.js';
import type { TenantPolicyState } from '../policy-engine.js';

export interface RemediationEngineOptions {
  /** A command not acked within this is expired by the dispatcher. */
  commandTtlS: number;
  /** Bound on remembered event ids / escalation windows / active actions (memory cap). */
  maxTracked?: number;
}

/** A Map used as a bounded insertion-ordered cache. */
function capped<K, V>(map: Map<K, V>, max: number): void {
  while (map.size > max) {
    const first = map.keys().next();
    if (first.done) return;
    map.delete(first.value);
  }
}

export class RemediationEngine {
  readonly #ctx: WorkerContext;
  readonly #ttlMs: number;
  readonly #max: number;
  /** Violations already considered: a QoS 1 redelivery must not count twice. */
  readonly #seen = new Map<string, true>();
  /** (tenant, device, rule) → violation times inside the escalation window. */
  readonly #windows = new Map<string, number[]>();
  /** (tenant, device, type, app) → until: actions in force. */
  readonly #active = new Map<string, number>();

  constructor(ctx: WorkerContext, opts: RemediationEngineOptions) {
    this.#ctx = ctx;
    this.#ttlMs = opts.commandTtlS * 1000;
    this.#max = opts.maxTracked ?? 100_000;
  }

  /** Called with a batch's decided records after they were stored. */
  async onDecided(tenantId: string, towerId: string, state: TenantPolicyState, records: DecidedUsage[]): Promise<void> {
    for (const r of records) {
      if (r.effect !== 'deny' || r.reason !== 'rule' || r.rule_id === null) continue;
      const rule = state.rules.get(r.rule_id);
      if (!rule || (!rule.remediation && !rule.escalation)) continue;
      const seenKey = `${tenantId}\u0000${r.id}`;
      if (this.#seen.has(seenKey)) continue;
      this.#seen.set(seenKey, true);
      capped(this.#seen, this.#max);
      if (!state.plan.auto_remediation) {
        this.#ctx.counters.inc('remediations_skipped_total', { reason: 'plan' });
        continue;
      }
      const now = this.#ctx.now();
      if (rule.escalation) {
        const key = `${tenantId}\u0000${r.device_id}\u0000${rule.id}`;
        const since = now - rule.escalation.window_s * 1000;
        const times = (this.#windows.get(key) ?? []).filter((t) => t > since);
        times.push(now);
        if (times.length >= rule.escalation.threshold) {
          this.#windows.delete(key);
          await this.#issue(tenantId, towerId, r, rule.id, rule.escalation.remediation, 'escalation', now);
          continue;
        }
        this.#windows.delete(key);
        this.#windows.set(key, times);
        capped(this.#windows, this.#max);
      }
      if (rule.remediation) await this.#issue(tenantId, towerId, r, rule.id, rule.remediation, 'auto', now);
    }
  }

  async #issue(
    tenantId: string,
    towerId: string,
    r: DecidedUsage,
    ruleId: string,
    remediation: Remediation,
    source: CommandSource,
    now: number,
  ): Promise<void> {
    const app = remediation.type === 'block_app' ? r.app : null;
    const activeKey = `${tenantId}\u0000${r.device_id}\u0000${remediation.type}\u0000${app ?? ''}`;
    const until = this.#active.get(activeKey);
    if (until !== undefined && until > now) {
      this.#ctx.counters.inc('remediations_skipped_total', { reason: 'already_active' });
      return;
    }
    const command = await this.#ctx.store.commands.create({
      tenant_id: tenantId,
      tower_id: towerId,
      device_id: r.device_id,
      type: remediation.type,
      app,
      duration_s: remediation.duration_s,
      reason: `${source === 'escalation' ? 'escalation of ' : ''}rule ${ruleId}: ${r.app}/${r.action} denied`,
      source,
      rule_id: ruleId,
      expires_at: now + this.#ttlMs,
    });
    this.#active.delete(activeKey);
    this.#active.set(activeKey, now + remediation.duration_s * 1000);
    capped(this.#active, this.#max);
    this.#ctx.counters.inc('remediations_issued_total', { source, type: remediation.type });
    this.#ctx.bus.publish('command.updated', { tenant_id: tenantId, command });
  }
}
