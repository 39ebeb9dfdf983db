/**
 * The plan's event-rate limit, enforced at ingest per tenant: a token bucket refilled at
 * `max_events_per_s` with one second of burst. Events over the limit are not decided; they come
 * back in the DecisionBatch as rejected with reason 'plan_rate_limited' and are counted.
 */
export class PlanRateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number; rate: number }>();
  readonly #now: () => number;

  constructor(now: () => number) {
    this.#now = now;
  }

  /** How many of `wanted` events the tenant may have now (0..wanted); null rate = unlimited. */
  take(tenantId: string, rate: number | null, wanted: number): number {
    if (rate === null) return wanted;
    const now = this.#now();
    let b = this.#buckets.get(tenantId);
    if (!b || b.rate !== rate) {
      // New tenant or a plan change: start full at the new rate, effective at once.
      b = { tokens: rate, at: now, rate };
      this.#buckets.set(tenantId, b);
    } else {
      b.tokens = Math.min(rate, b.tokens + ((now - b.at) / 1000) * rate);
      b.at = now;
    }
    const granted = Math.max(0, Math.min(wanted, Math.floor(b.tokens)));
    b.tokens -= granted;
    return granted;
  }
}
