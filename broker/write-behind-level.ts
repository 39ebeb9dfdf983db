/**
 * Groups the session store's LevelDB writes into batches (embedded mode, backends-level.ts).
 *
 * Every QoS 1 message to a persistent session costs aedes-persistence-level several separate
 * writes — enqueue, the in-flight record under its message id, the clear on PUBACK — and a CPU
 * profile of the pipeline put a third of the control plane's time in them. Here the writes issued
 * while a batch is being written (or within one event-loop turn when none is) go to LevelDB as
 * one `batch()`: the busier the broker, the larger the batches.
 *
 * What it keeps:
 * - Durability: a write's promise resolves only once the batch holding it is written (LevelDB's
 *   log, as for a single put), so whatever waits on it — a SUBACK, a CONNACK — waits as before.
 *   Except the session-queue writes (`outgoing:` / `outgoing-id:` keys: a message queued for a
 *   session, its in-flight record, their clear at the PUBACK), which resolve once issued: aedes
 *   waits on three of them one after another before it writes a QoS 1 message to an online
 *   subscriber's socket, and each wait was a batch (a turn or more under load) — most of a
 *   decision's latency. Their durability is asked for where it is promised instead: a publish
 *   calls back only once every write issued before its callback is written (`mark` + `durable`,
 *   edgeplane-aedes.ts), so a PUBACK or a downlink's completion still means "queued on disk".
 *   What the early answer can lose in a crash is only what nobody was told is durable: a message
 *   delivered before its enqueue was written (its publisher was not answered, so it is sent
 *   again), an in-flight record (the message is resent from the queue with a new id) or a clear
 *   (the message is delivered once more; QoS 1 receivers deduplicate).
 * - Order: batches are written one at a time, in the order the writes were issued.
 * - Reads see every write issued before them: `get` answers from the writes not yet written,
 *   and an iteration (`values`, `keys`) or `clear` starts only after they are written.
 * A failed batch fails each of its writes' promises, and reads fall back to what LevelDB holds.
 *
 * `get` also answers from the last RECENT_WRITES small session-queue keys written: aedes reads back
 * what it has just written (the queued message when it is sent, its in-flight record at the
 * PUBACK), and those reads were the next fifth of the CPU. This process is the only writer (LevelDB locks the
 * directory), so what it wrote last is what LevelDB holds.
 *
 * Only the methods aedes-persistence-level 9 and backends-level.ts use are wrapped (put, del,
 * batch in both forms, get, values, keys, clear, close); the rest pass through to LevelDB.
 */
import type { ClassicLevel } from 'classic-level';

type Db = ClassicLevel<string, Buffer>;

/** Written keys whose last value (or deletion) `get` answers from memory (see worthKeeping). */
const RECENT_WRITES = 4096;
/** Writes per LevelDB batch (more only to keep a caller's group whole). */
const MAX_BATCH = 256;
/** Larger values are not kept once written (a bundle part delivered to a tower: ~100 KB). */
const KEEP_MAX_BYTES = 2048;

/**
 * What aedes reads back soon after writing it: a session's queued messages and their in-flight
 * records (`outgoing:` and `outgoing-id:` keys), when small — decisions and commands.
 * Subscriptions, wills and retained messages are read from LevelDB.
 */
function worthKeeping(op: Op): boolean {
  return isSessionQueue(op) && (op.type === 'del' || op.value.length <= KEEP_MAX_BYTES);
}

/** A session-queue write: answered once issued, made durable by the publish it belongs to. */
function isSessionQueue(op: Op): boolean {
  return op.key.startsWith('outgoing');
}

type Op = { type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string };

interface Pending {
  op: Op;
  /** Sequence of this write: a newer write to the same key replaces it in `recent`. */
  seq: number;
  /** The last write of its caller's group: a batch never splits a group (aedes' batches stay atomic). */
  last: boolean;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export interface WriteBehindStats {
  batches: number;
  writes: number;
  /** Session-queue writes answered early whose batch then failed (see `durable`). */
  failedEarly: number;
}

export class WriteBehindLevel {
  readonly #db: Db;
  /**
   * The newest write per key (null: deleted), oldest first: every write not yet written, and the
   * last RECENT_WRITES written ones.
   */
  readonly #recent = new Map<string, { value: Buffer | null; seq: number }>();
  #queue: Pending[] = [];
  #seq = 0;
  #writing: Promise<void> | null = null;
  #scheduled = false;
  /** Sequence of the last write settled (written or failed). */
  #settled = 0;
  readonly #barriers: Array<{ seq: number; resolve: () => void }> = [];
  /** Sequence of the newest early-answered write that failed, and why. */
  #failedEarly = 0;
  #failedEarlyError: unknown = null;
  readonly stats: WriteBehindStats = { batches: 0, writes: 0, failedEarly: 0 };

  /** fsync each batch before its writes resolve (`durability: 'power'`). */
  readonly #sync: boolean;

  constructor(db: Db, opts: { sync?: boolean } = {}) {
    this.#db = db;
    this.#sync = opts.sync ?? false;
  }

  /** The object to hand to aedes-persistence-level in place of `db`. */
  facade(): Db {
    const db = this.#db;
    const wrapped: Record<string | symbol, unknown> = {
      put: (key: string, value: Buffer) => this.#write([{ type: 'put', key, value }]),
      del: (key: string) => this.#write([{ type: 'del', key }]),
      batch: (ops?: Op[]) => {
        if (ops) return this.#write(ops);
        const chained: Op[] = [];
        const batch = {
          put: (key: string, value: Buffer) => (chained.push({ type: 'put', key, value }), batch),
          del: (key: string) => (chained.push({ type: 'del', key }), batch),
          write: () => this.#write(chained),
        };
        return batch;
      },
      get: (key: string, opts?: unknown) => {
        const hit = this.#recent.get(key);
        if (hit) return Promise.resolve(hit.value ?? undefined);
        return db.get(key, opts as never);
      },
      values: (opts?: unknown) => this.#afterWrites(() => db.values(opts as never)),
      keys: (opts?: unknown) => this.#afterWrites(() => db.keys(opts as never)),
      clear: async (opts?: RangeOptions) => {
        await this.flush();
        // LevelDB deletes these without a write of ours: forget what we remember of them.
        for (const key of [...this.#recent.keys()]) if (inRange(key, opts)) this.#recent.delete(key);
        return db.clear(opts as never);
      },
      close: async () => {
        await this.flush();
        return db.close();
      },
    };
    return new Proxy(db, {
      get(target, prop) {
        if (Object.hasOwn(wrapped, prop)) return wrapped[prop];
        // The target as receiver: classic-level's getters read private fields.
        const v: unknown = Reflect.get(target, prop);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }

  /**
   * Resolves once every write issued so far is settled (written, or failed and reported to its
   * caller); writes issued later do not hold it up.
   */
  flush(): Promise<void> {
    const seq = this.#seq;
    if (this.#settled >= seq) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.#barriers.push({ seq, resolve });
      if (!this.#writing) this.#start();
    });
  }

  /** Where the writes issued so far end: hand it to `durable` once the work that began here is done. */
  mark(): number {
    return this.#seq;
  }

  /**
   * Resolves once every write issued so far is in LevelDB; rejects if one of the early-answered
   * writes issued after `mark` failed (then whoever waits was not made durable, and must not say so).
   */
  async durable(mark: number): Promise<void> {
    await this.flush();
    if (this.#failedEarly > mark) throw new Error('session store write failed', { cause: this.#failedEarlyError });
  }

  #write(ops: readonly Op[]): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    if (ops.every(isSessionQueue)) {
      this.#enqueue(ops, noop, (err) => this.#earlyFailed(err));
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => this.#enqueue(ops, resolve, reject));
  }

  #earlyFailed(err: unknown): void {
    this.stats.failedEarly++;
    this.#failedEarly = this.#settled;
    this.#failedEarlyError = err;
  }

  #enqueue(ops: readonly Op[], resolve: () => void, reject: (err: unknown) => void): void {
    // One settlement for the group: its ops share the last op's.
    ops.forEach((op, i) => {
      const seq = ++this.#seq;
      // Re-inserted, so the map stays in write order (eviction takes the oldest).
      this.#recent.delete(op.key);
      this.#recent.set(op.key, { value: op.type === 'put' ? op.value : null, seq });
      const last = i === ops.length - 1;
      this.#queue.push({ op, seq, last, resolve: last ? resolve : noop, reject: last ? reject : noop });
    });
    this.#schedule();
  }

  #schedule(): void {
    if (this.#writing || this.#scheduled) return;
    this.#scheduled = true;
    // Everything issued in this turn of the event loop goes into the first batch.
    setImmediate(() => {
      this.#scheduled = false;
      if (!this.#writing && this.#queue.length > 0) this.#start();
    });
  }

  #start(): void {
    if (this.#queue.length === 0) return;
    // About MAX_BATCH writes at once (a fleet connecting queues thousands), never splitting a
    // caller's group; the rest go next.
    let end = Math.min(MAX_BATCH, this.#queue.length) - 1;
    while (!this.#queue[end]!.last) end++;
    const group = this.#queue.splice(0, end + 1);
    this.stats.batches++;
    this.stats.writes += group.length;
    this.#writing = this.#db.batch(group.map((p) => p.op), { sync: this.#sync }).then(
      () => this.#settle(group, null),
      (err: unknown) => this.#settle(group, err),
    );
  }

  #settle(group: readonly Pending[], err: unknown): void {
    for (const p of group) {
      const entry = this.#recent.get(p.op.key);
      if (entry?.seq !== p.seq) continue;
      // Failed, or not worth keeping: reads go to LevelDB again for this key.
      if (err !== null || !worthKeeping(p.op)) this.#recent.delete(p.op.key);
      // Copied: msgpack hands out slices of larger shared chunks, which a kept slice would pin.
      // Kept values are small, so the copy lands densely in Node's buffer pool.
      else if (entry.value) entry.value = Buffer.from(entry.value);
    }
    this.#writing = null;
    this.#settled = group[group.length - 1]!.seq;
    // Keep the last RECENT_WRITES written keys; never drop a write not yet written.
    for (const [key, entry] of this.#recent) {
      if (this.#recent.size <= RECENT_WRITES || entry.seq > this.#settled) break;
      this.#recent.delete(key);
    }
    for (const p of group) {
      if (err === null) p.resolve();
      else p.reject(err);
    }
    for (let i = this.#barriers.length - 1; i >= 0; i--) {
      const b = this.#barriers[i]!;
      if (b.seq > this.#settled) continue;
      this.#barriers.splice(i, 1);
      b.resolve();
    }
    // Writes issued while this batch was written go next, at once.
    if (this.#queue.length > 0) this.#start();
  }

  /** An async iterable that starts iterating LevelDB only after the writes issued before it. */
  #afterWrites<T>(open: () => AsyncIterable<T>): AsyncIterable<T> {
    const flushed = this.flush();
    return {
      async *[Symbol.asyncIterator]() {
        await flushed;
        yield* open();
      },
    };
  }
}

function noop(): void {}

interface RangeOptions {
  gt?: string;
  gte?: string;
  lt?: string;
  lte?: string;
}

function inRange(key: string, r: RangeOptions = {}): boolean {
  return (r.gt === undefined || key > r.gt) && (r.gte === undefined || key >= r.gte) && (r.lt === undefined || key < r.lt) && (r.lte === undefined || key <= r.lte);
}
