/**
 * A full store — SQLite's SQLITE_FULL (the disk, or the file's page limit), MongoDB's out of disk
 * space — is a state of the environment, not a fault of the message or request that hit it.
 * Everything that writes fails the same way until space is freed: towers' uplinks are refused
 * (not PUBACKed, so the towers redeliver them), API writes answer 503, background jobs retry.
 *
 * One tracker per process says so once per episode instead of once per refusal: the first
 * refusal opens the episode (one `store_full` error line), every refusal is counted
 * (`store_full_errors_total{source}`), and the first write that succeeds afterwards closes it
 * (one `store_writable` line with the number refused). Errors that are not a full store are left
 * to their callers' own handling.
 */
import type { Logger } from '../logger.js';
import type { Counters } from '../metrics.js';

/** MongoDB's OutOfDiskSpace server error code. */
const MONGO_OUT_OF_DISK_SPACE = 14031;

/**
 * Whether `err` says the store has no space left for the write. SQLite reports a write(2) that
 * failed with ENOSPC as SQLITE_FULL too (os_unix.c), not as an I/O error.
 */
export function isStoreFull(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { code, codeName } = err as { code?: unknown; codeName?: unknown };
  return code === 'SQLITE_FULL' || code === MONGO_OUT_OF_DISK_SPACE || codeName === 'OutOfDiskSpace';
}

/** The message API clients get for a write refused for lack of space. */
export const STORE_FULL_MESSAGE = 'storage is full: the change was not saved; retry once space has been freed';

/**
 * Whether `err` says the store's lock stayed taken past the busy timeout: SQLite's SQLITE_BUSY
 * (and its extended codes) or SQLITE_LOCKED, when another process on the same file holds the
 * write lock for longer than 5 s (a long write, or a process stalled mid-transaction). Transient,
 * like a full disk a state of the environment: the write was rolled back and a retry may succeed.
 */
export function isStoreBusy(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { code } = err as { code?: unknown };
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

/** The message API clients get for a request refused because the store's lock stayed taken. */
export const STORE_BUSY_MESSAGE = 'storage is busy (another process holds its write lock): the change was not saved; retry';

export interface StoreFaultsDeps {
  logger: Logger;
  counters: Counters;
  now: () => number;
}

export class StoreFaults {
  readonly #log: Logger;
  readonly #counters: Counters;
  readonly #now: () => number;
  /** The open episode: since when, and how many refusals it counted. */
  #episode: { since: number; refused: number; sources: Set<string> } | null = null;

  constructor(deps: StoreFaultsDeps) {
    this.#log = deps.logger;
    this.#counters = deps.counters;
    this.#now = deps.now;
    deps.counters.gauge('store_full', () => (this.#episode ? 1 : 0));
  }

  /** True while writes are known to fail for lack of space (since the last success). */
  get full(): boolean {
    return this.#episode !== null;
  }

  /**
   * Reports a failed store operation of `source` (ingest, api, audit, …). Returns true when `err`
   * is a full store: counted, and logged only if it opens an episode; the caller then skips its
   * own error log. Returns false for any other error, which is left to the caller.
   */
  refused(err: unknown, source: string): boolean {
    if (!isStoreFull(err)) return false;
    this.#counters.inc('store_full_errors_total', { source });
    const episode = this.#episode;
    if (episode) {
      episode.refused++;
      episode.sources.add(source);
      return true;
    }
    this.#episode = { since: this.#now(), refused: 1, sources: new Set([source]) };
    const { code, message } = err as { code?: unknown; message?: unknown };
    this.#log.error(
      { event: 'store_full', source, code, error: typeof message === 'string' ? message : String(err) },
      'the store is full: writes are refused until space is freed (tower events are not acknowledged and are redelivered, API writes answer 503)',
    );
    return true;
  }

  /** A store write succeeded: closes the open episode, if any (one line). */
  writable(): void {
    const episode = this.#episode;
    if (!episode) return;
    this.#episode = null;
    this.#log.warn(
      { event: 'store_writable', refused: episode.refused, sources: [...episode.sources].sort(), duration_ms: this.#now() - episode.since },
      'the store accepts writes again',
    );
  }
}
