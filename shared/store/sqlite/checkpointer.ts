/**
 * Moves SQLite's WAL checkpoints off the event loop. By default the connection that commits a
 * transaction which grows the WAL past 1,000 pages copies the WAL back into the database file
 * and syncs it, synchronously, inside that commit: a stall of tens of milliseconds on the thread
 * that decides and answers events. Measured in bench (b): with checkpoints off the event loop,
 * p99 decision latency at 2,000 events/s went from 16–41 ms to 6.5 ms.
 *
 * Here a worker thread with its own connection to the same file runs a PASSIVE checkpoint every
 * `intervalMs` (it never blocks writers or readers), and the main connection keeps a far larger
 * automatic checkpoint threshold as a safety net. If the worker fails, the main connection goes
 * back to SQLite's default threshold: checkpoints on the event loop again, but never an unbounded
 * WAL. The same while the worker's checkpoints fail round after round (a full disk): once one
 * succeeds again the worker takes them back. Durability does not change: commits are in the WAL
 * (write(2)) either way.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';

/** The main connection's threshold while the worker runs (pages; ~40 MB of WAL). */
const SAFETY_NET_PAGES = 10_000;
/** SQLite's default threshold, restored if the worker fails. */
const DEFAULT_PAGES = 1000;

// CommonJS evaluated in the worker: the same code from the sources (tsx) and from dist/. The
// checkpoint statement is prepared once: `db.pragma()` prepares a new one at every call, and an
// idle worker's GC may not run for hours, so each call's sqlite3_stmt (1–2 KB of native memory)
// stayed allocated: ~11 MB of RSS over 10,000 checkpoints (42 minutes at 4 a second), measured.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { timeout: workerData.busyTimeoutMs });
db.pragma('synchronous = NORMAL');
const statement = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
let failures = 0;
const timer = setInterval(() => {
  try {
    statement.get();
    // Working again after a persistent failure (a full disk freed): the main connection may
    // leave checkpoints to this thread again.
    if (failures >= workerData.failuresToFallBack) parentPort.postMessage({ state: 'ok' });
    failures = 0;
  } catch (err) {
    // SQLITE_BUSY and the like: the next round will do. A persistent failure (SQLITE_FULL on a
    // full disk, an I/O error) hands checkpoints back to the main connection until one succeeds;
    // the thread keeps trying, so a failure that passes does not leave them on the event loop.
    if (++failures === workerData.failuresToFallBack) parentPort.postMessage({ state: 'failing', error: String(err && err.message) });
  }
}, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m === 'checkpoint') {
    let reply;
    try {
      reply = { result: statement.get() };
    } catch (err) {
      reply = { error: String(err && err.message) };
    }
    parentPort.postMessage(reply);
    return;
  }
  if (m !== 'stop') return;
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

/** What one PASSIVE checkpoint did (SQLite's `wal_checkpoint` row): WAL frames in all, and copied. */
export interface CheckpointResult {
  busy: number;
  log: number;
  checkpointed: number;
}

const STOPPED = 'the checkpoint worker has stopped';

export interface CheckpointerOptions {
  file: string;
  intervalMs: number;
  busyTimeoutMs: number;
  /** The better-sqlite3 module the worker loads (a resolved path); tests pass an instrumented one. */
  driver?: string;
  /** Failed rounds in a row before the main connection checkpoints again itself. Default 20. */
  failuresToFallBack?: number;
  /** The worker's checkpoints failed persistently (false), or work again (true). */
  onHealth?: (working: boolean, error?: string) => void;
}

export class Checkpointer {
  readonly #db: Database.Database;
  readonly #worker: Worker;
  readonly #exited: Promise<void>;
  /** Callers of checkpoint(), answered in order (the worker answers one message at a time). */
  readonly #waiting: Array<{ resolve: (r: CheckpointResult) => void; reject: (e: Error) => void }> = [];
  #stopping = false;
  #gone = false;

  constructor(db: Database.Database, opts: CheckpointerOptions) {
    this.#db = db;
    db.pragma(`wal_autocheckpoint = ${SAFETY_NET_PAGES}`);
    const driver = opts.driver ?? createRequire(import.meta.url).resolve('better-sqlite3');
    // The worker holds one connection and one statement: a small heap, so its garbage (and the
    // native memory behind it) is collected often.
    this.#worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { file: opts.file, intervalMs: opts.intervalMs, busyTimeoutMs: opts.busyTimeoutMs, driver, failuresToFallBack: opts.failuresToFallBack ?? 20 },
      resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 },
    });
    // A store left open must not keep the process alive.
    this.#worker.unref();
    this.#worker.on('message', (m: { result?: CheckpointResult; error?: string; state?: 'failing' | 'ok' }) => {
      if (m.state === 'failing') {
        this.#fallBack();
        opts.onHealth?.(false, m.error);
        return;
      }
      if (m.state === 'ok') {
        if (!this.#stopping) this.#db.pragma(`wal_autocheckpoint = ${SAFETY_NET_PAGES}`);
        opts.onHealth?.(true);
        return;
      }
      const waiter = this.#waiting.shift();
      if (!waiter) return;
      if (m.result) waiter.resolve(m.result);
      else waiter.reject(new Error(`checkpoint failed: ${m.error ?? 'unknown error'}`));
    });
    this.#exited = new Promise((resolve) => {
      this.#worker.once('error', () => this.#fallBack());
      this.#worker.once('exit', () => {
        this.#gone = true;
        this.#fallBack();
        for (const waiter of this.#waiting.splice(0)) waiter.reject(new Error(STOPPED));
        resolve();
      });
    });
  }

  /** Runs one PASSIVE checkpoint in the worker now, besides the timer's. */
  checkpoint(): Promise<CheckpointResult> {
    if (this.#stopping || this.#gone) return Promise.reject(new Error(STOPPED));
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.#worker.postMessage('checkpoint');
    });
  }

  /** Stops the worker (its connection closed) before the main connection closes. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#worker.postMessage('stop');
    await this.#exited;
  }

  #fallBack(): void {
    if (this.#stopping) return;
    try {
      this.#db.pragma(`wal_autocheckpoint = ${DEFAULT_PAGES}`);
    } catch {
      // The main connection is closing too.
    }
  }
}
