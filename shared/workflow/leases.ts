/**
 * Leases (a workflow-state port): "exactly one process of the cluster does this now" for work
 * that every process would otherwise repeat — the periodic retention pass, publishing a policy
 * bundle version, resuming open work at start. In-process adapter here; Redis adapter in
 * redis/leases.ts; both pass contract/leases.contract.ts. Time is the caller's clock.
 */
export interface Leases {
  /** Takes `name` for `owner` until now + ttlMs if it is free, expired, or already `owner`'s. */
  acquire(name: string, owner: string, now: number, ttlMs: number): Promise<boolean>;
  /** Gives `name` back if `owner` holds it (a no-op otherwise). */
  release(name: string, owner: string): Promise<void>;
}

const MAX_LEASES = 100_000;

export class InProcessLeases implements Leases {
  readonly #held = new Map<string, { owner: string; until: number }>();

  async acquire(name: string, owner: string, now: number, ttlMs: number): Promise<boolean> {
    const held = this.#held.get(name);
    if (held && held.until > now && held.owner !== owner) return false;
    this.#held.delete(name);
    this.#held.set(name, { owner, until: now + ttlMs });
    // Expired leases carry nothing: bound the map by dropping the oldest.
    while (this.#held.size > MAX_LEASES) {
      const oldest = this.#held.keys().next().value;
      if (oldest === undefined) break;
      this.#held.delete(oldest);
    }
    return true;
  }

  async release(name: string, owner: string): Promise<void> {
    if (this.#held.get(name)?.owner === owner) this.#held.delete(name);
  }
}
