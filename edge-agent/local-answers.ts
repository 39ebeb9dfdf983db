/**
 * Events the agent denied at the edge because a block was in force (Enforcer.isBlocked). Such
 * an event is still reported to the cloud for the record; its cloud decision must then not be
 * applied or emitted a second time, so the ids are remembered in a bounded set.
 */
import type { Decision } from '../shared/mqtt/payloads.js';
import { LruMap } from './lru.js';

export class LocalAnswers {
  readonly #answered: LruMap<string, true>;
  #count = 0;

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

  /** True when the event was already answered at the edge. */
  has(eventId: string): boolean {
    return this.#answered.get(eventId) === true;
  }
}
