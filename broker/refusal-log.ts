/**
 * Logs refusals (rate limit, caps, protocol violations) at most once per client and reason per
 * interval: the first one at once, the rest as one line with their count when the interval
 * ends. A client hammering a limit costs a counter increment per refusal, not a log line.
 */
import type { Logger } from '../shared/logger.js';

interface Entry {
  first: Record<string, unknown>;
  level: 'info' | 'warn';
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
  refused(clientId: string | null, reason: string, message: string, fields: Record<string, unknown> = {}, level: 'info' | 'warn' = 'info'): void {
    const key = `${reason}\u0000${clientId ?? ''}`;
    const entry = this.#entries.get(key);
    if (entry) {
      entry.suppressed++;
      return;
    }
    const first = { client_id: clientId, reason, ...fields };
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
