/**
 * `_id` values built from several parts. JSON arrays keep the parts apart whatever they contain;
 * usage keys use a plain ':' join because tenant ids (ULIDs) never contain one and the key then
 * sorts like the event id within a tenant (the list's id order).
 */
export function usageKey(tenantId: string, eventId: string): string {
  return `${tenantId}:${eventId}`;
}

export function compositeKey(...parts: string[]): string {
  return JSON.stringify(parts);
}

/** Slots per tenant for the usage counters; a batch always lands in the same slot. */
export const COUNTER_SLOTS = 8;

export function counterSlotKey(tenantId: string, slot: number): string {
  return `${tenantId}:${slot}`;
}

export function counterSlotOf(batchId: string): number {
  let h = 0;
  for (let i = 0; i < batchId.length; i++) h = (h * 31 + batchId.charCodeAt(i)) >>> 0;
  return h % COUNTER_SLOTS;
}
