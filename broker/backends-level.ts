/**
 * Embedded mode's durable broker sessions: aedes-persistence-level over classic-level (LevelDB)
 * in one directory of the data dir. Persistent sessions (clean=false: the towers), their
 * subscriptions, the QoS 1 messages queued for them, retained messages and wills survive a
 * restart of the process, including kill -9: LevelDB appends each write to its log with
 * write(2) before the call returns, so the OS holds it even if the process dies (only a machine
 * crash could lose the last unsynced writes — unless `durability: 'power'`, which fsyncs each
 * batch before its writes resolve).
 *
 * Things relied on from aedes-persistence-level 9.2 (asyncPersistence.js):
 * - `setup()` loads every stored subscription into an in-memory trie; lookups by topic never
 *   touch the disk afterwards.
 * - A queued message's key is `outgoing:<client>:<brokerId>:<brokerCounter>` (counter zero-padded)
 *   and a session replays in key order. aedes restarts its counter at 0 at every start, so the
 *   broker id must be new at every start, or a new message would overwrite one queued by an
 *   earlier run; and it must sort by time (aedes' default is a random UUID), or a command queued
 *   after a restart could replay before one queued before it (block, then unblock). Broker
 *   passes a ULID as the aedes id for this reason.
 * - Wills are keyed by client id only, so a tower's new CONNECT replaces the will a killed
 *   broker left behind.
 * - A retained message is the msgpack-lite encoding of its packet under `retained:<topic>`.
 *   aedes-persistence-level finds the ones a SUBSCRIBE matches by decoding every retained message
 *   (O(retained) per subscription, O(towers²) for a fleet connecting); this backend answers that
 *   query itself from an index of the retained topics (retained-index.ts, built from the keys at
 *   open) and reads only the matching keys. Writes still go through aedes-persistence-level.
 * - Writes are grouped into LevelDB batches (write-behind-level.ts), and reads see every write
 *   issued before them. A write's promise resolves once it is in LevelDB's log, except a
 *   session-queue write's, which resolves at once; `durability` tells when those are written, and
 *   a publish calls back only then (edgeplane-aedes.ts).
 * One process at a time: LevelDB locks the directory, and a second opener gets a clear error.
 */
import { mkdir } from 'node:fs/promises';
import levelPersistence from 'aedes-persistence-level';
import { ClassicLevel } from 'classic-level';
import mqemitter from 'mqemitter';
import msgpack from 'msgpack-lite';
import type { Durability } from '../shared/config.js';
import { EMITTER_CONCURRENCY, type BrokerBackends, type MessageEmitter, type SessionPersistence, type WriteDurability } from './backends.js';
import { RetainedIndex } from './retained-index.js';
import { WriteBehindLevel } from './write-behind-level.js';

const RETAINED = 'retained:';
const WRITE_BUFFER_BYTES = 1024 * 1024;

export interface LevelBackendsOptions {
  /** The LevelDB directory, created if missing: `<data-dir>/broker-sessions` in embedded mode. */
  location: string;
  /**
   * `power`: each batch is fsync'ed before the writes in it resolve, so what the broker acked
   * (a PUBACK) survives a power cut too. Default `process`: written to LevelDB's log with
   * write(2), surviving the process (kill -9), not the machine.
   */
  durability?: Durability;
}

export function levelBackends(opts: LevelBackendsOptions): BrokerBackends {
  let opening: Promise<SessionPersistence> | null = null;
  let emitter: MessageEmitter | null = null;
  let closed = false;
  let writes: WriteBehindLevel | null = null;
  const durability: WriteDurability = {
    mark: () => writes?.mark() ?? 0,
    durable: (mark) => writes?.durable(mark) ?? Promise.resolve(),
  };

  async function open(): Promise<SessionPersistence> {
    await mkdir(opts.location, { recursive: true, mode: 0o700 });
    // A 1 MiB write buffer (LevelDB's default is 4 MiB): each tower's connect writes ~1.6 KB of
    // session records, and the memtable holds them until the buffer flushes (~3.2 MB at 2,000
    // idle towers). Bench (j), 3 alternating pairs with memory trimming on: RSS per idle tower
    // 17.8–19.8 against 19.2–21.7 KB at 2,000 towers, 18.1–19.4 against 19.7–19.8 at 5,000. Under
    // load the session store writes little (the answers are not queued), so flushes stay rare.
    const db = new ClassicLevel<string, Buffer>(opts.location, { valueEncoding: 'buffer', writeBufferSize: WRITE_BUFFER_BYTES });
    try {
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: { code?: unknown } }).cause;
      const hint = cause?.code === 'LEVEL_LOCKED' ? ' (locked: is another EdgePlane process using this data dir?)' : '';
      throw new Error(`broker session store ${opts.location} cannot be opened${hint}`, { cause: err });
    }
    // Writes grouped into batches (write-behind-level.ts); reads see them before they are written.
    writes = new WriteBehindLevel(db, { sync: opts.durability === 'power' });
    const store = writes.facade();
    return indexRetained(levelPersistence(store), store);
  }

  return {
    kind: 'level',
    durability,
    persistence() {
      if (closed) return Promise.reject(new Error('broker session store is closed'));
      opening ??= open();
      return opening;
    },
    mq() {
      // One process: an in-process emitter is all the fan-out there is.
      emitter ??= mqemitter({ concurrency: EMITTER_CONCURRENCY, matchEmptyLevels: true });
      return emitter;
    },
    async close() {
      if (closed) return;
      closed = true;
      const persistence = await opening?.catch(() => null);
      // Closes the LevelDB handle (and with it the directory lock).
      await persistence?.destroy();
    },
  };
}

/** The async implementation inside aedes-persistence's callback layer (callBackPersistence.js). */
interface RetainedOps {
  storeRetained(packet: { topic: string; payload: Buffer }): Promise<void>;
  createRetainedStreamCombi(patterns: string[]): AsyncIterable<unknown>;
  createRetainedStream(pattern: string): AsyncIterable<unknown>;
}

/** Serves retained lookups from an index of the retained topics (see the header). */
async function indexRetained(persistence: SessionPersistence, db: ClassicLevel<string, Buffer>): Promise<SessionPersistence> {
  const index = new RetainedIndex();
  // Keys only: the values are not read at open. ';' follows ':' (the range is the prefix exactly).
  for await (const key of db.keys({ gte: RETAINED, lt: 'retained;' })) index.add(key.slice(RETAINED.length));
  const ops = (persistence as unknown as { asyncPersistence: RetainedOps }).asyncPersistence;
  const store = ops.storeRetained.bind(ops);
  // The index follows the last write issued per topic (LevelDB applies writes in issue order).
  const latest = new Map<string, number>();
  let seq = 0;
  ops.storeRetained = async (packet) => {
    const mine = ++seq;
    latest.set(packet.topic, mine);
    // Indexed before the write (a lookup meanwhile finds no value and skips it), removed after.
    if (packet.payload.length > 0) index.add(packet.topic);
    try {
      await store(packet);
    } finally {
      if (latest.get(packet.topic) === mine) {
        latest.delete(packet.topic);
        if (packet.payload.length === 0) index.delete(packet.topic);
      }
    }
  };
  const matching = async function* (patterns: string[]): AsyncGenerator<unknown> {
    for (const topic of index.match(patterns)) {
      const blob = await db.get(RETAINED + topic);
      if (blob !== undefined) yield msgpack.decode(blob);
    }
  };
  ops.createRetainedStreamCombi = (patterns) => matching(patterns);
  ops.createRetainedStream = (pattern) => matching([pattern]);
  return persistence;
}
