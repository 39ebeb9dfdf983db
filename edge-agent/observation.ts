/** Validation of a single usage observation, before it gets an id and joins a batch. */
import { KEY_RE, TOPIC_ID_RE } from '../shared/ids.js';
import type { ObservedUsage } from './agent-types.js';

/**
 * The latest `ts` taken (2^52 - 1 ms, some 142,000 years after 1970). The journal stores a time
 * as its difference from the previous event's, exactly only within ±2^52; a larger integer (1e20
 * is one) was written as a record that could not be read back, and replaying it failed for ever.
 */
export const MAX_TS = 2 ** 52 - 1;

/**
 * Throws a TypeError naming the bad field. One malformed event must be refused here: inside a
 * batch it would make the cloud reject the whole batch (UsageBatchSchema).
 */
export function checkObservation(e: ObservedUsage): void {
  // typeof first: RegExp.test(undefined) tests the string "undefined", which would pass.
  if (typeof e.device_id !== 'string' || !TOPIC_ID_RE.test(e.device_id)) throw new TypeError(`observe: device_id must be a string matching ${TOPIC_ID_RE}`);
  if (typeof e.app !== 'string' || !KEY_RE.test(e.app)) throw new TypeError(`observe: app must be a string matching ${KEY_RE}`);
  if (typeof e.action !== 'string' || !KEY_RE.test(e.action)) throw new TypeError(`observe: action must be a string matching ${KEY_RE}`);
  if (e.tenant_id !== undefined && (typeof e.tenant_id !== 'string' || !TOPIC_ID_RE.test(e.tenant_id))) throw new TypeError(`observe: tenant_id must be a string matching ${TOPIC_ID_RE}`);
  if (e.ts !== undefined && !(Number.isInteger(e.ts) && e.ts >= 0 && e.ts <= MAX_TS)) throw new TypeError(`observe: ts must be a non-negative integer (epoch ms) up to ${MAX_TS}`);
  if (e.bytes !== undefined && !(Number.isSafeInteger(e.bytes) && e.bytes >= 0)) throw new TypeError(`observe: bytes must be a non-negative integer up to ${Number.MAX_SAFE_INTEGER}`);
}
