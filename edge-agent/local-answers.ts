/**
 * Events the agent denied at the edge because a block was in force (Enforcer.isBlocked). Such
 * an event is still reported to the cloud for the record; its cloud decision must then not be
 * applied or emitted a second time, so the ids are remembered in a bounded set. Also the
 * decision for a device no bundle maps to a tenant (the unknown-device default): the cloud never
 * decides those (they are reported for discovery only), so there is nothing to remember.
 */
import type { Decision, Effect } from '../shared/mqtt/payloads.js';
import { LruMap } from './lru.js';

export class LocalAnswers {
  readonly #answered: LruMap<string, true>;
  #count = 0;
  #unknown = 0;

  /** `max` should cover every event that can await its cloud decision (the offline buffer). */
  constructor(max: number) {
    this.#answered = new LruMap(max);
  }

  /** Events answered locally since start. */
  get count(): number {
    return this.#count;
  }

  /** Records the local answer and returns its decision. */
  answer(eventId: string, deviceId: string): Decision {
    this.#answered.set(eventId, true);
    this.#count++;
    return { event_id: eventId, device_id: deviceId, effect: 'deny', reason: 'blocked', rule_id: null, policy_id: null, severity: null };
  }

  /** The unknown-device default for an event whose device no bundle maps. */
  unknownDevice(eventId: string, deviceId: string, effect: Effect): Decision {
    this.#unknown++;
    return { event_id: eventId, device_id: deviceId, effect, reason: 'unknown_device', rule_id: null, policy_id: null, severity: null };
  }

  /** Unknown-device answers since start. */
  get unknownCount(): number {
    return this.#unknown;
  }

  /** True when the event was already answered at the edge. */
  has(eventId: string): boolean {
    return this.#answered.get(eventId) === true;
  }
}
