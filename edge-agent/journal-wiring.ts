/**
 * The agent's journal and its replay feed, built together from the agent's options (a state dir
 * turns them on), and what the agent does with them at start, on a buffer overflow and at stop.
 */
import type { IdFactory } from '../shared/ids.js';
import type { Logger } from '../shared/logger.js';
import { journalDir } from './journal-dir.js';
import { JournalFeed } from './journal-feed.js';
import { Journal, type ReplayEvent } from './journal/journal.js';
import type { OutboundBatch } from './offline-buffer.js';

export interface AgentJournalOptions {
  stateDir: string;
  towerId: string;
  maxBytes: number;
  fsyncMs: number;
  batchMaxEvents: number;
  bufferMaxEvents: number;
  newId: IdFactory;
  now: () => number;
  log: Logger;
  online: () => boolean;
  buffered: () => number;
  push: (item: OutboundBatch) => void;
  onReplay: (tenantId: string, events: ReplayEvent[]) => void;
  onEvicted: (info: { events: number; bytes: number }) => void;
  onError: (err: Error) => void;
}

export class AgentJournal {
  readonly journal: Journal;
  readonly feed: JournalFeed;
  readonly #log: Logger;
  #corruptReported = 0;

  constructor(o: AgentJournalOptions) {
    this.#log = o.log;
    this.journal = new Journal({
      dir: journalDir(o.stateDir, o.towerId),
      maxBytes: o.maxBytes,
      fsyncMs: o.fsyncMs,
      onEvicted: (info) => {
        o.log.warn({ event: 'journal_evicted', ...info }, 'journal over its disk budget: oldest events evicted, never sent');
        o.onEvicted(info);
      },
      onError: o.onError,
    });
    this.feed = new JournalFeed({
      journal: this.journal,
      newId: o.newId,
      now: o.now,
      batchMaxEvents: o.batchMaxEvents,
      online: o.online,
      buffered: o.buffered,
      // Enough queued to keep the pacer busy, never the whole backlog in memory, and never more
      // than the uplink buffer holds (an overflow would spill and rewind the replay).
      lowWater: Math.max(1, Math.min(o.bufferMaxEvents, Math.max(1000, Math.min(10_000, Math.floor(o.bufferMaxEvents / 2))))),
      push: o.push,
      onReplay: o.onReplay,
      onCaughtUp: () => {
        o.log.info({ event: 'journal_caught_up', replayed: this.feed.replayed }, 'journal backlog replayed: events go live again');
        // Damage found on the way is said once, not only counted where nobody looks.
        const corrupt = this.journal.corruptEvents;
        if (corrupt > this.#corruptReported) {
          o.log.warn({ event: 'journal_corrupt', events: corrupt - this.#corruptReported, total: corrupt }, 'journal: events damaged on disk could not be read back and were not sent');
          this.#corruptReported = corrupt;
        }
      },
    });
  }

  /** Opens the journal; what an earlier run left unacknowledged is replayed first. */
  async open(): Promise<void> {
    const report = await this.journal.open();
    if (report.tornBytes > 0) this.#log.warn({ event: 'journal_torn_tail', bytes: report.tornBytes }, 'journal: a torn last record (a crash mid-write) was cut; the rest replays');
    if (report.pending > 0) {
      this.#log.info({ event: 'journal_replay', events: report.pending }, 'journal: events of an earlier run not yet acknowledged are sent first');
      this.feed.catchUp(this.journal.firstSeq);
    }
  }

  /**
   * The uplink buffer overflowed: nothing is lost, the usage batches it held (and those it gave
   * up) are dropped from memory and replayed from disk from the oldest of them.
   */
  spill(batches: OutboundBatch[]): void {
    let from = Infinity;
    for (const item of batches) if (item.kind === 'usage') for (const seq of item.seqs ?? []) if (seq >= 0) from = Math.min(from, seq);
    if (from !== Infinity) this.feed.catchUp(from);
  }

  async close(): Promise<void> {
    this.feed.stop();
    const pending = this.journal.pendingEvents;
    await this.journal.close();
    if (pending > 0) this.#log.info({ event: 'journal_pending', events: pending }, 'journal: events not yet acknowledged are sent at the next start');
  }
}
