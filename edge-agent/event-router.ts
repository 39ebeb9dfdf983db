/**
 * Where one observed event goes once its tenant is known (or known to be unknown): a known
 * tenant's usage is denied at once when the enforcer has a block in force (usage-path.ts batches
 * it either way); a device the directory does not list is reported for discovery and answered
 * with the unknown-device default.
 * Local answers are emitted in a microtask, so the caller holds the event id (observe's return
 * value) before its decision arrives. Also the one place decisions reach the Enforcer.
 */
import type { Decision, Effect } from '../shared/mqtt/payloads.js';
import type { DecisionOrigin, ObservedUsage } from './agent-types.js';
import type { Batcher } from './batcher.js';
import type { BlockStatus, Enforcer } from './enforcer.js';
import type { LocalAnswers } from './local-answers.js';

export interface EventRouterOptions {
  batcher: Batcher;
  enforcer: Enforcer;
  local: LocalAnswers;
  unknownDeviceEffect: Effect;
  /** A local answer, after the enforcer has it. */
  onDecision: (tenantId: string | null, decision: Decision, origin: DecisionOrigin) => void;
  /** Enforcer faults: reported, never fatal. */
  onError: (err: Error) => void;
}

export class EventRouter {
  readonly #o: EventRouterOptions;

  constructor(opts: EventRouterOptions) {
    this.#o = opts;
  }

  /** Answers a known tenant's event at once when the enforcer has a block in force for it. */
  blocked(tenantId: string, id: string, e: ObservedUsage): boolean {
    const block = this.#blockOf(tenantId, e.device_id, e.app);
    if (!block) return false;
    const decision = this.#o.local.answer(id, e.device_id);
    this.answer(tenantId, decision, { source: 'local', block });
    return true;
  }

  /** A device no bundle maps: a discovery sighting, and the unknown-device default. */
  unknown(id: string, ts: number, e: ObservedUsage): void {
    this.#o.batcher.addDiscovery(e.device_id, ts);
    const decision = this.#o.local.unknownDevice(id, e.device_id, this.#o.unknownDeviceEffect);
    this.answer(null, decision, { source: 'local', unknown_device: true });
  }

  /** Hands a decision to the enforcer; its errors, thrown or rejected, are reported. */
  apply(tenantId: string | null, d: Decision): void {
    try {
      const applied = this.#o.enforcer.applyDecision(tenantId, d);
      if (applied) applied.catch((err: unknown) => this.#o.onError(toError(err)));
    } catch (err) {
      this.#o.onError(toError(err));
    }
  }

  /**
   * A decision made at the edge: to the enforcer, then emitted, in a microtask (so observe()'s
   * caller holds the event id first).
   */
  answer(tenantId: string | null, decision: Decision, origin: DecisionOrigin): void {
    queueMicrotask(() => {
      this.apply(tenantId, decision);
      this.#o.onDecision(tenantId, decision, origin);
    });
  }

  #blockOf(tenantId: string, deviceId: string, app: string): BlockStatus | null {
    try {
      return this.#o.enforcer.isBlocked?.(tenantId, deviceId, app) ?? null;
    } catch (err) {
      this.#o.onError(toError(err));
      return null;
    }
  }
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
