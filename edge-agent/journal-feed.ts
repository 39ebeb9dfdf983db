/**
 * Replays the journal's backlog to the cloud (issue #11). Short outages are bridged in memory
 * (the uplink's bounded buffer); when that buffer overflows, or a restarted agent finds events its
 * previous run journalled and never got acknowledged, the agent is "catching up": new events are
 * journalled only, and this feed reads pending events back from disk, in order, as batches per
 * tenant, whenever the uplink is online and has room (paced like any uplink). Once it reaches the
 * end of the journal, events go live again (straight to the batcher).
 */
import type { IdFactory } from '../shared/ids.js';
import { MAX_EVENTS_PER_BATCH, SCHEMA_VERSION } from '../shared/mqtt/payloads.js';
import type { Journal, JournalReader, ReplayEvent } from './journal/journal.js';
import type { OutboundBatch } from './offline-buffer.js';

export interface JournalFeedOptions {
  journal: Journal;
  newId: IdFactory;
  now: () => number;
  batchMaxEvents: number;
  online: () => boolean;
  /** Events waiting in the uplink now. */
  buffered: () => number;
  /**
   * Keep at most this many events waiting in the uplink while replaying; at most the uplink
   * buffer's capacity, so a replay never overflows it.
   */
  lowWater: number;
  push: (item: OutboundBatch) => void;
  /** The events of a batch about to be pushed (before it is). */
  onReplay: (tenantId: string, events: ReplayEvent[]) => void;
  /** Caught up: events may go live again. */
  onCaughtUp: () => void;
}

export class JournalFeed {
  readonly #o: JournalFeedOptions;
  #reader: JournalReader | null = null;
  #pumping = false;
  #replayed = 0;

  constructor(opts: JournalFeedOptions) {
    this.#o = opts;
  }

  /** True while events must go through the journal (a backlog is being replayed). */
  get catchingUp(): boolean {
    return this.#reader !== null;
  }

  /** Events read back from the journal and handed to the uplink so far. */
  get replayed(): number {
    return this.#replayed;
  }

  /** Replays from `fromSeq` (or keeps replaying from an earlier point already under way). */
  catchUp(fromSeq: number): void {
    if (this.#reader && this.#reader.position <= fromSeq) return;
    this.#reader?.close();
    this.#reader = this.#o.journal.reader(fromSeq);
    this.pump();
  }

  /** Hands pending events to the uplink while it is online and has room. */
  pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#reader && this.#o.online() && this.#o.buffered() < this.#o.lowWater) {
        // Never more than the room left under lowWater (itself within the uplink buffer): a read
        // that overflowed the buffer spilled, rewound this reader and was read again, for ever.
        const room = this.#o.lowWater - this.#o.buffered();
        const events = this.#reader.read(Math.min(room, Math.max(this.#o.batchMaxEvents * 4, 1000)));
        if (events.length === 0) {
          if (this.#reader.position >= this.#o.journal.nextSeq) this.#finish();
          break;
        }
        this.#push(events);
      }
    } finally {
      this.#pumping = false;
    }
  }

  stop(): void {
    this.#reader?.close();
    this.#reader = null;
  }

  #finish(): void {
    this.#reader?.close();
    this.#reader = null;
    this.#o.onCaughtUp();
  }

  /** Per-tenant batches, each in journal order. */
  #push(events: ReplayEvent[]): void {
    const max = Math.min(this.#o.batchMaxEvents, MAX_EVENTS_PER_BATCH);
    const byTenant = new Map<string, ReplayEvent[]>();
    const flush = (tenantId: string, list: ReplayEvent[]): void => {
      byTenant.delete(tenantId);
      this.#o.onReplay(tenantId, list);
      this.#replayed += list.length;
      this.#o.push({
        kind: 'usage',
        tenantId,
        batch: { v: SCHEMA_VERSION, id: this.#o.newId(), sent_at: this.#o.now(), events: list.map((e) => e.event) },
        seqs: list.map((e) => e.seq),
      });
    };
    for (const e of events) {
      let list = byTenant.get(e.tenantId);
      if (!list) byTenant.set(e.tenantId, (list = []));
      list.push(e);
      if (list.length >= max) flush(e.tenantId, list);
    }
    for (const [tenantId, list] of [...byTenant]) flush(tenantId, list);
  }
}
