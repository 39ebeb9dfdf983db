/**
 * A full store — SQLite's SQLITE_FULL (the disk, or the file's page limit), MongoDB's out of disk
 * space —, a busy one — another process holding SQLite's write lock past the busy timeout — and an
 * unreachable one — MongoDB's servers not answering, or no primary (a failover) — are states of
 * the environment, not faults of the message or request that hit them. Everything that
 * writes fails the same way until space is freed or the lock released: towers' uplinks are
 * refused (not PUBACKed, so the towers redeliver them), API writes answer 503, background jobs
 * retry.
 *
 * One tracker per process says so once per episode instead of once per refusal: the first
 * refusal of a kind opens its episode (one `store_full` error line, or `store_busy` warn line),
 * every refusal is counted (`store_full_errors_total{source}`, `store_busy_errors_total{source}`),
 * and the first write that succeeds afterwards closes whatever is open (one `store_writable` line
 * per episode, with its kind and the number refused). Errors of neither kind are left to their
 * callers' own handling.
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

/** The MongoDB driver's errors for servers it cannot reach (by class name: the driver is loaded lazily). */
const MONGO_UNREACHABLE_ERRORS: ReadonlySet<string> = new Set([
  'MongoNetworkError',
  'MongoNetworkTimeoutError',
  'MongoServerSelectionError',
  'MongoTopologyClosedError',
  'MongoNotConnectedError',
]);
/**
 * MongoDB server codes for "no primary to take this now": NotWritablePrimary, NotPrimaryNoSecondaryOk,
 * NotPrimaryOrSecondary, PrimarySteppedDown, InterruptedDueToReplStateChange, InterruptedAtShutdown,
 * ShutdownInProgress — what a replica set answers during a failover or a restart.
 */
const MONGO_NO_PRIMARY_CODES: ReadonlySet<number> = new Set([10107, 13435, 13436, 189, 11602, 11600, 91]);

/**
 * Whether `err` says the store cannot be reached now: MongoDB's network, server-selection and
 * closed-topology errors, and a replica set without a primary. Transient: the operation was not
 * applied (or, for a write in a transaction, rolled back), and a retry may succeed.
 */
export function isStoreUnreachable(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { name, code } = err as { name?: unknown; code?: unknown };
  return (typeof name === 'string' && MONGO_UNREACHABLE_ERRORS.has(name)) || (typeof code === 'number' && MONGO_NO_PRIMARY_CODES.has(code));
}

/** The message API clients get for a request refused because the store does not answer. */
export const STORE_UNREACHABLE_MESSAGE = 'storage is unreachable (no database server answers, or none is primary): nothing was changed; retry';

export interface StoreFaultsDeps {
  logger: Logger;
  counters: Counters;
  now: () => number;
}

export type StoreFaultKind = 'full' | 'busy' | 'unreachable';

/** What each kind's opening line says, and at which level. */
const OPENING: Record<StoreFaultKind, { level: 'error' | 'warn'; message: string }> = {
  full: {
    level: 'error',
    message: 'the store is full: writes are refused until space is freed (tower events are not acknowledged and are redelivered, API writes answer 503)',
  },
  unreachable: {
    level: 'error',
    message: 'the store is unreachable: operations are refused until it answers (tower events are not acknowledged and are redelivered, API requests answer 503)',
  },
  busy: {
    level: 'warn',
    message: 'the store is busy: another process holds its write lock past the busy timeout; writes are refused until it is released (tower events are not acknowledged and are redelivered, API writes answer 503)',
  },
};

/** The kind of store refusal `err` is, or null for any other error. */
export function storeFaultKind(err: unknown): StoreFaultKind | null {
  if (isStoreFull(err)) return 'full';
  if (isStoreBusy(err)) return 'busy';
  if (isStoreUnreachable(err)) return 'unreachable';
  return null;
}

interface Episode {
  since: number;
  refused: number;
  sources: Set<string>;
}

export class StoreFaults {
  readonly #log: Logger;
  readonly #counters: Counters;
  readonly #now: () => number;
  /** The open episode of each kind: since when, and how many refusals it counted. */
  readonly #episodes = new Map<StoreFaultKind, Episode>();

  constructor(deps: StoreFaultsDeps) {
    this.#log = deps.logger;
    this.#counters = deps.counters;
    this.#now = deps.now;
    deps.counters.gauge('store_full', () => (this.#episodes.has('full') ? 1 : 0));
    deps.counters.gauge('store_busy', () => (this.#episodes.has('busy') ? 1 : 0));
    deps.counters.gauge('store_unreachable', () => (this.#episodes.has('unreachable') ? 1 : 0));
  }

  /** True while writes are known to fail for lack of space (since the last success). */
  get full(): boolean {
    return this.#episodes.has('full');
  }

  /** True while writes are known to fail on another process's write lock (since the last success). */
  get busy(): boolean {
    return this.#episodes.has('busy');
  }

  /** True while operations are known to fail because the store does not answer (since the last success). */
  get unreachable(): boolean {
    return this.#episodes.has('unreachable');
  }

  /**
   * Reports a failed store operation of `source` (ingest, api, audit, …). Returns the kind when
   * `err` is a full, busy or unreachable store: counted, and logged only if it opens an episode; the caller
   * then skips its own error log. Returns null for any other error, which is left to the caller.
   */
  refused(err: unknown, source: string): StoreFaultKind | null {
    const kind = storeFaultKind(err);
    if (kind === null) return null;
    this.#counters.inc(`store_${kind}_errors_total`, { source });
    const episode = this.#episodes.get(kind);
    if (episode) {
      episode.refused++;
      episode.sources.add(source);
      return kind;
    }
    this.#episodes.set(kind, { since: this.#now(), refused: 1, sources: new Set([source]) });
    const { code, message } = err as { code?: unknown; message?: unknown };
    const opening = OPENING[kind];
    this.#log[opening.level]({ event: `store_${kind}`, source, code, error: typeof message === 'string' ? message : String(err) }, opening.message);
    return kind;
  }

  /** A store write succeeded: closes the open episodes, if any (one line each). */
  writable(): void {
    if (this.#episodes.size === 0) return;
    const now = this.#now();
    for (const [kind, episode] of this.#episodes) {
      this.#log.warn(
        { event: 'store_writable', kind, refused: episode.refused, sources: [...episode.sources].sort(), duration_ms: now - episode.since },
        'the store accepts writes again',
      );
    }
    this.#episodes.clear();
  }
}
