/**
 * Remediation workflow state (a port): escalation windows and actions in force. Shared by every
 * worker in distributed mode (Redis adapter), so N workers raise one escalation and one command
 * per violation, not N. Both adapters pass contract/remediation-state.contract.ts.
 *
 * Both operations are idempotent, so a batch processed twice (a redelivery, a job re-run after a
 * worker died) changes nothing the second time:
 * - a violation is counted once per event id, also across a reset: the events a reset took out of
 *   the count stay known (for as long as they would have stayed in the window), so an escalation's
 *   batch processed again neither starts the next window nor remediates a second time;
 * - an action is claimed by an owner (the id of the command that carries it); claiming again
 *   with the same owner is granted again.
 *
 * Keys include the tower: towers are shared infrastructure, so a violation reported by tower A
 * must neither count toward an escalation at tower B nor suppress B's own remediation.
 */
export interface ViolationKey {
  tenant_id: string;
  tower_id: string;
  device_id: string;
  rule_id: string;
}

export interface ActionKey {
  tenant_id: string;
  tower_id: string;
  device_id: string;
  type: string;
  /** The app of app-scoped actions (block_app), else null. */
  app: string | null;
}

export interface ClaimResult {
  granted: boolean;
  /** The owner holding the action now (ours when granted). */
  holder: string;
}

export interface RemediationState {
  /**
   * Records violation `eventId` at `at` and returns how many distinct violations the key has in
   * (at - windowMs, at]. Recording the same event id again does not count it twice. 0 when the
   * event was taken out of the count by a reset (it took part in an escalation already).
   */
  countViolation(key: ViolationKey, eventId: string, at: number, windowMs: number): Promise<number>;
  /**
   * Takes the key's violations out of the count (an escalation fired: the next one starts a new
   * window); their event ids stay known, so counting one of them again answers 0.
   */
  resetViolations(key: ViolationKey): Promise<void>;
  /**
   * Claims the action for `owner` until `until`. Granted when nobody holds it, when the holder's
   * claim has ended (until <= at), or when `owner` already holds it.
   */
  claimAction(key: ActionKey, owner: string, at: number, until: number): Promise<ClaimResult>;
}

export function violationKey(k: ViolationKey): string {
  return [k.tenant_id, k.tower_id, k.device_id, k.rule_id].join('\u0000');
}

export function actionKey(k: ActionKey): string {
  return [k.tenant_id, k.tower_id, k.device_id, k.type, k.app ?? ''].join('\u0000');
}

const DEFAULT_MAX_KEYS = 100_000;

export interface InProcessRemediationStateOptions {
  /** Keys kept per map (windows, actions) before the ended ones are swept out. */
  maxKeys?: number;
  /**
   * Told when live entries had to go (more than 90 % of maxKeys still in force): `n` windows or
   * actions forgotten early, so a violation may be counted anew or a block issued again.
   */
  onLiveDropped?: (what: 'windows' | 'actions', n: number) => void;
}

interface Window {
  counted: Map<string, number>;
  spent: Map<string, number>;
  /** When everything the window remembers has left it (its newest time + its length). */
  end: number;
}

export class InProcessRemediationState implements RemediationState {
  /**
   * key → its window: the ids counted (at most about `threshold`, as an escalation resets them)
   * and the ids a reset took out of the count, kept in the order they were spent (about time
   * order) and dropped from the oldest, so a violation costs O(counted), not O(everything the
   * window remembers).
   */
  readonly #windows: EndingMap<Window>;
  /** key → who holds the action and until when (`end`). */
  readonly #actions: EndingMap<{ owner: string; end: number }>;

  constructor(opts: InProcessRemediationStateOptions = {}) {
    const max = opts.maxKeys ?? DEFAULT_MAX_KEYS;
    const dropped = opts.onLiveDropped ?? (() => undefined);
    this.#windows = new EndingMap(max, (n) => dropped('windows', n));
    this.#actions = new EndingMap(max, (n) => dropped('actions', n));
  }

  async countViolation(key: ViolationKey, eventId: string, at: number, windowMs: number): Promise<number> {
    const k = violationKey(key);
    const w = this.#windows.get(k) ?? { counted: new Map<string, number>(), spent: new Map<string, number>(), end: 0 };
    const from = at - windowMs;
    const spent = w.spent.has(eventId);
    if (!spent && !w.counted.has(eventId)) w.counted.set(eventId, at);
    for (const [id, t] of w.spent) {
      if (t > from) break;
      w.spent.delete(id);
    }
    let n = 0;
    for (const [id, t] of w.counted) {
      if (t <= from) w.counted.delete(id);
      else if (t <= at) n++;
    }
    w.end = Math.max(w.end, at + windowMs);
    this.#windows.set(k, w, at);
    return spent ? 0 : n;
  }

  async resetViolations(key: ViolationKey): Promise<void> {
    const w = this.#windows.get(violationKey(key));
    if (!w) return;
    for (const [id, t] of w.counted) w.spent.set(id, t);
    w.counted.clear();
  }

  async claimAction(key: ActionKey, owner: string, at: number, until: number): Promise<ClaimResult> {
    const k = actionKey(key);
    const held = this.#actions.get(k);
    if (held && held.end > at && held.owner !== owner) return { granted: false, holder: held.owner };
    const end = held?.owner === owner ? Math.max(held.end, until) : until;
    this.#actions.set(k, { owner, end }, at);
    return { granted: true, holder: owner };
  }
}

/**
 * A map bounded by what has ended, not by use: an action in force or a window that still counts
 * is never pushed out by newer keys (an LRU did that, so a block still in force was forgotten and
 * the next violation remediated again). Over the bound, a sweep drops the entries that ended; if
 * that frees less than a tenth of the bound, the live entries that end soonest go too, reported,
 * so that sweeps (each walks the map) come at most once per tenth of the bound of new keys.
 */
class EndingMap<V extends { end: number }> {
  readonly #map = new Map<string, V>();
  readonly #max: number;
  readonly #onLiveDropped: (n: number) => void;

  constructor(max: number, onLiveDropped: (n: number) => void) {
    this.#max = max;
    this.#onLiveDropped = onLiveDropped;
  }

  get(key: string): V | undefined {
    return this.#map.get(key);
  }

  set(key: string, value: V, now: number): void {
    this.#map.set(key, value);
    if (this.#map.size > this.#max) this.#sweep(key, now);
  }

  /** Never drops `kept`, the entry just written (it was claimed or counted for this call). */
  #sweep(kept: string, now: number): void {
    for (const [k, v] of this.#map) if (v.end <= now) this.#map.delete(k);
    const keep = Math.floor(this.#max * 0.9);
    const excess = this.#map.size - keep;
    if (excess <= 0) return;
    const live = [...this.#map].filter(([k]) => k !== kept);
    const soonest = live.sort((a, b) => a[1].end - b[1].end).slice(0, excess);
    for (const [k] of soonest) this.#map.delete(k);
    this.#onLiveDropped(excess);
  }
}
