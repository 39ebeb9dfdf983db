/**
 * Rate budgets (a workflow-state port): token buckets that every process of a deployment shares,
 * so N workers or N API processes enforce one limit, not N. The in-process adapter is here; the
 * Redis adapter (redis/rate-budgets.ts) runs the same arithmetic in a Lua script. Both pass
 * contract/rate-budgets.contract.ts.
 *
 * Two operations:
 * - `take`: a plain token bucket (rate per second, burst), e.g. sign-in throttles;
 * - `takeShared`: a group budget shared by its members max-min fairly, e.g. a tenant's plan
 *   event rate among its towers. The group may use `rate` per second; a member's cap is
 *       max(rate / active members, rate − OTHERS_HEADROOM × what the others asked for lately)
 *   So every active member may always use an equal share, a member asking for more gets what the
 *   others leave (work-conserving: one busy tower is not held to an equal share while the rest are
 *   quiet), and a member flooding cannot take what the others ask for within their share.
 *   "Lately" is the larger of the current and the previous second's requests (demand, not grants,
 *   so a member being held back still counts what it needs). Members are active for
 *   `active_window_ms` after their last take.
 *
 * Time is the caller's clock (`now`), passed in, so tests control it and Redis' own clock does not
 * matter; key expiry in Redis only collects garbage. A bucket used with a new rate (a plan change)
 * starts full at the new rate, so the change takes effect at once.
 */
import { GenerationalCache } from '../generational-cache.js';
export interface BucketLimit {
  /** Tokens added per second. */
  rate_per_s: number;
  /** Bucket size: what a full bucket allows at once. */
  burst: number;
}

export interface SharedTake {
  group: string;
  member: string;
  /** The group's rate; its burst is one second of it. */
  rate_per_s: number;
  /** A member counts as active for this long after its last take. */
  active_window_ms: number;
}

export interface TakeOnce {
  /** Names the take (e.g. a digest of the batch's events); scoped to the request's group. */
  id: string;
  /** How long the grant is remembered after the take, and after each repeat. */
  remember_ms: number;
}

export interface OnceGrant {
  granted: number;
  /** The take was made before (within `remember_ms`): `granted` is that take's grant. */
  repeated: boolean;
}

export interface RateBudgets {
  /** Takes up to `wanted` tokens from `key`'s bucket; returns how many were granted (0..wanted). */
  take(key: string, limit: BucketLimit, wanted: number, now: number): Promise<number>;
  /** Takes up to `wanted` tokens from the member's fair share and the group; returns the grant. */
  takeShared(req: SharedTake, wanted: number, now: number): Promise<number>;
  /**
   * `takeShared`, charged once per `once.id`: the same take again within `once.remember_ms` of
   * the first or the latest repeat (a redelivered batch) gets the first grant back, `repeated`,
   * and spends no tokens and counts no demand. One atomic step with the take itself (no extra
   * round trip on the Redis adapter).
   */
  takeSharedOnce(req: SharedTake, once: TakeOnce, wanted: number, now: number): Promise<OnceGrant>;
  /** Tokens left in `key`'s bucket now, without taking (for Retry-After style answers). */
  level(key: string, limit: BucketLimit, now: number): Promise<number>;
  /** Forgets `key`: its next take starts from a full bucket. */
  reset(key: string): Promise<void>;
}

/** Room kept for the others above what they asked for lately: they may grow 20 % at once. */
export const OTHERS_HEADROOM = 1.2;

/** Events asked for in the current and the previous second. */
export interface WindowCount {
  win: number;
  cur: number;
  prev: number;
}

export function rollWindow(w: WindowCount | undefined, now: number): WindowCount {
  const sec = Math.floor(now / 1000);
  if (!w || sec > w.win + 1) return { win: sec, cur: 0, prev: 0 };
  if (sec === w.win + 1) return { win: sec, cur: 0, prev: w.cur };
  return { ...w };
}


/** The member's cap (events/s) given the group rate, active members and the others' recent rate. */
export function memberCap(rate: number, active: number, othersRate: number): number {
  return Math.min(rate, Math.max(rate / Math.max(1, active), rate - OTHERS_HEADROOM * Math.max(0, othersRate)));
}

interface Grant {
  granted: number;
  until: number;
}

interface Bucket {
  tokens: number;
  at: number;
  /** The rate the bucket was last used with. */
  rate: number;
}

/**
 * The refill arithmetic, shared by the in-process adapter and mirrored by the Lua script. A new
 * rate (a plan change) starts the bucket full at once when `resetOnNewRate`; otherwise (a fair
 * share that moved because members came or went) the tokens are only capped to the new burst.
 */
export function refill(b: Bucket | undefined, limit: BucketLimit, now: number, resetOnNewRate = true): Bucket {
  if (!b || (resetOnNewRate && b.rate !== limit.rate_per_s)) return { tokens: limit.burst, at: now, rate: limit.rate_per_s };
  const elapsed = Math.max(0, now - b.at);
  return {
    tokens: Math.min(limit.burst, b.tokens + (elapsed / 1000) * limit.rate_per_s),
    at: Math.max(now, b.at),
    rate: limit.rate_per_s,
  };
}

/** Most buckets remembered at once; the least recently used go first (bounded memory). */
const DEFAULT_MAX_KEYS = 100_000;
/**
 * Most takeSharedOnce grants remembered at once (measured ~160 bytes each, so ~32 MB at most);
 * the oldest go first. At 2,000 usage batches a second that is at least the last 50 s of batches.
 */
const DEFAULT_MAX_GRANTS = 200_000;

export class InProcessRateBudgets implements RateBudgets {
  readonly #buckets = new Map<string, Bucket>();
  readonly #windows = new Map<string, WindowCount>();
  /** group → member → last take. */
  readonly #members = new Map<string, Map<string, number>>();
  /** takeSharedOnce grants by group and take id: this generation and the one before. */
  readonly #grants: GenerationalCache<string, Grant>;
  /** When the young generation of grants started. */
  #generationAt = -Infinity;
  readonly #maxKeys: number;

  constructor(opts: { maxKeys?: number; maxGrants?: number } = {}) {
    this.#maxKeys = opts.maxKeys ?? DEFAULT_MAX_KEYS;
    this.#grants = new GenerationalCache(opts.maxGrants ?? DEFAULT_MAX_GRANTS);
  }

  async take(key: string, limit: BucketLimit, wanted: number, now: number): Promise<number> {
    const b = refill(this.#buckets.get(key), limit, now);
    const granted = Math.max(0, Math.min(wanted, Math.floor(b.tokens)));
    b.tokens -= granted;
    this.#put(key, b);
    return granted;
  }

  async takeShared(req: SharedTake, wanted: number, now: number): Promise<number> {
    return this.#takeShared(req, wanted, now);
  }

  #takeShared(req: SharedTake, wanted: number, now: number): number {
    const active = this.#activeMembers(req, now);
    const groupKey = sharedGroupKey(req.group);
    const memberKey = sharedMemberKey(req.group, req.member);
    const gw = rollWindow(this.#windows.get(groupKey), now);
    const mw = rollWindow(this.#windows.get(memberKey), now);
    // The others' demand: the group's minus this member's (both per the same window rule).
    const others = Math.max(gw.prev - mw.prev, gw.cur - mw.cur);
    const cap = memberCap(req.rate_per_s, active, others);
    const prev = this.#buckets.get(groupKey);
    const g = refill(prev, { rate_per_s: req.rate_per_s, burst: req.rate_per_s }, now);
    const memberLimit = { rate_per_s: cap, burst: cap };
    // A new group rate (plan change) starts the members full too; a moved cap only bounds them.
    const m = prev && prev.rate !== req.rate_per_s ? refill(undefined, memberLimit, now) : refill(this.#buckets.get(memberKey), memberLimit, now, false);
    const granted = Math.max(0, Math.min(wanted, Math.floor(g.tokens), Math.floor(m.tokens)));
    g.tokens -= granted;
    m.tokens -= granted;
    gw.cur += wanted;
    mw.cur += wanted;
    this.#put(groupKey, g);
    this.#put(memberKey, m);
    this.#putWindow(groupKey, gw);
    this.#putWindow(memberKey, mw);
    return granted;
  }

  async takeSharedOnce(req: SharedTake, once: TakeOnce, wanted: number, now: number): Promise<OnceGrant> {
    const key = `${req.group}\0${once.id}`;
    const seen = this.#grants.peek(key);
    if (seen && seen.until > now) {
      // Remembered for remember_ms after the latest repeat, so a job re-run every few seconds
      // for as long as an outage lasts stays charged once.
      seen.until = Math.max(seen.until, now + once.remember_ms);
      this.#remember(key, seen, now, once.remember_ms);
      return { granted: seen.granted, repeated: true };
    }
    // Synchronous from the look-up to the record: two deliveries of one batch racing each other
    // cannot both miss the memory and both spend.
    const granted = this.#takeShared(req, wanted, now);
    this.#remember(key, { granted, until: now + once.remember_ms }, now, once.remember_ms);
    return { granted, repeated: false };
  }

  /**
   * Two generations (shared/generational-cache.ts): a grant lives until its generation is two
   * back, a generation ending when it is full (half the bound) or older than remember_ms.
   */
  #remember(key: string, grant: Grant, now: number, rememberMs: number): void {
    if (now - this.#generationAt >= rememberMs) {
      this.#grants.rotate();
      this.#generationAt = now;
    }
    if (this.#grants.set(key, grant)) this.#generationAt = now;
  }

  async level(key: string, limit: BucketLimit, now: number): Promise<number> {
    return refill(this.#buckets.get(key), limit, now).tokens;
  }

  async reset(key: string): Promise<void> {
    this.#buckets.delete(key);
  }

  #activeMembers(req: SharedTake, now: number): number {
    let members = this.#members.get(req.group);
    if (!members) {
      members = new Map();
      this.#members.set(req.group, members);
    }
    // Kept in the order of their last take (moved to the end on each), so the idle ones are at the
    // front: dropping them stops at the first active one instead of walking every member.
    members.delete(req.member);
    members.set(req.member, now);
    for (const [m, at] of members) {
      if (at > now - req.active_window_ms) break;
      members.delete(m);
    }
    const active = members.size;
    // Bounded like the buckets: a group is forgotten when it has been idle longest.
    this.#members.delete(req.group);
    this.#members.set(req.group, members);
    while (this.#members.size > this.#maxKeys) {
      const oldest = this.#members.keys().next().value;
      if (oldest === undefined) break;
      this.#members.delete(oldest);
    }
    return Math.max(1, active);
  }

  #putWindow(key: string, w: WindowCount): void {
    this.#windows.delete(key);
    this.#windows.set(key, w);
    while (this.#windows.size > this.#maxKeys) {
      const oldest = this.#windows.keys().next().value;
      if (oldest === undefined) break;
      this.#windows.delete(oldest);
    }
  }

  #put(key: string, b: Bucket): void {
    this.#buckets.delete(key);
    this.#buckets.set(key, b);
    while (this.#buckets.size > this.#maxKeys) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest === undefined) break;
      this.#buckets.delete(oldest);
    }
  }
}

export function sharedGroupKey(group: string): string {
  return `shared:${group}`;
}

export function sharedOnceKey(group: string, id: string): string {
  return `shared:${group}:once:${id}`;
}

export function sharedMemberKey(group: string, member: string): string {
  return `shared:${group}:m:${member}`;
}
