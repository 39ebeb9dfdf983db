/**
 * Logs refusals (rate limit, caps, protocol violations) at most once per client and reason per
 * interval: the first one at once, the rest as one line with their count when the interval
 * ends. A client hammering a limit costs a counter increment per refusal, not a log line.
 *
 * A refused login names itself: its client id and username are whatever the CONNECT said, so
 * "once per client" alone let anyone make the broker hold (and log) one entry per connection,
 * each with up to 16 KiB of id and username, until the interval ended (3,000 refused CONNECTs
 * held 47 MB). At most REFUSAL_LOG_MAX_ENTRIES clients are followed per interval, the refusals
 * of any other client are summed per reason, and strings taken from the client are cut to
 * REFUSAL_LOG_MAX_FIELD_CHARS.
 */
import type { Logger } from '../shared/logger.js';

/** Distinct (client, reason) pairs followed one by one per interval; beyond, one per reason. */
export const REFUSAL_LOG_MAX_ENTRIES = 1000;
/** Longest string a refusal keeps and logs (client id, username, topic). */
export const REFUSAL_LOG_MAX_FIELD_CHARS = 256;

export type RefusalLevel = 'info' | 'warn' | 'error';

interface Entry {
  first: Record<string, unknown>;
  level: RefusalLevel;
  suppressed: number;
}

export class RefusalLog {
  readonly #log: Logger;
  readonly #intervalMs: number;
  #entries = new Map<string, Entry>();
  #timer: NodeJS.Timeout | null = null;

  constructor(log: Logger, intervalMs: number) {
    this.#log = log;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.flush(), this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.flush();
  }

  /**
   * One refusal of `clientId` for `reason`; `fields` are logged with the first of the interval,
   * at `level` (refused logins are operational events: warn).
   */
  refused(clientId: string | null, reason: string, message: string, fields: Record<string, unknown> = {}, level: RefusalLevel = 'info'): void {
    const id = clientId === null ? null : clip(clientId);
    let key = `${reason}\u0000${id ?? ''}`;
    let entry = this.#entries.get(key);
    if (!entry && this.#entries.size >= REFUSAL_LOG_MAX_ENTRIES) {
      // Too many clients this interval: the rest are counted together, per reason.
      key = `${reason}\u0000\u0000`;
      entry = this.#entries.get(key);
      if (!entry) {
        const first = { client_id: null, reason, clients_over: REFUSAL_LOG_MAX_ENTRIES };
        this.#entries.set(key, { first, suppressed: 0, level });
        this.#log[level](first, `${message} (more clients refused than logged one by one)`);
        return;
      }
    }
    if (entry) {
      entry.suppressed++;
      return;
    }
    const first: Record<string, unknown> = { client_id: id, reason };
    for (const [k, v] of Object.entries(fields)) first[k] = typeof v === 'string' ? clip(v) : v;
    this.#entries.set(key, { first, suppressed: 0, level });
    this.#log[level](first, message);
  }

  /** Ends the interval: one line per client and reason that was refused again since its first. */
  flush(): void {
    const entries = this.#entries;
    this.#entries = new Map();
    for (const { first, suppressed, level } of entries.values()) {
      if (suppressed > 0) this.#log[level]({ client_id: first['client_id'], reason: first['reason'], count: suppressed, interval_ms: this.#intervalMs }, 'more refusals in the interval');
    }
  }
}

/**
 * `s` cut to REFUSAL_LOG_MAX_FIELD_CHARS, in a string of its own: V8 makes a slice of a long
 * string a view that keeps the whole original alive.
 */
function clip(s: string): string {
  if (s.length <= REFUSAL_LOG_MAX_FIELD_CHARS) return s;
  return `${Buffer.from(s.slice(0, REFUSAL_LOG_MAX_FIELD_CHARS), 'utf8').toString('utf8')}…(${s.length} chars)`;
}
