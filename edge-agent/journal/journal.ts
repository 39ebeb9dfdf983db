/**
 * The agent's durable journal (issue #11): every usage event it accepts, until the broker has
 * acknowledged it (PUBACK) carrying the local decision the tower made for it, if any. A restarted
 * agent replays what is still pending, in order; the cloud stores each event once (by id).
 *
 * Layout under `dir`: segment files of events, append-only, named by their first sequence number
 * (`<first>.seg` while written, renamed `<first>-<count>.seg` once sealed), and `meta.log`, the
 * append-only record of acknowledgements and of local decisions made after an event was journalled
 * (the cloud's answer came late). Sequence numbers are contiguous across segments.
 *
 * Durability:
 * - `append` writes the record with one write(2) before it returns, so once it returns a crash of
 *   the process (kill -9) loses nothing: the bytes are in the kernel. `fsyncMs` bounds what a
 *   power loss can take: the files are fdatasync'ed every `fsyncMs` (default 1 s, like Redis'
 *   appendfsync everysec), or after every write with 0 (much slower). Sealing a segment syncs it.
 *   The directory is synced with them whenever a segment was created, renamed or deleted since
 *   the last sync (at once with 0): an fdatasync'ed segment whose directory entry never reached
 *   the disk would vanish in a power cut with every event it holds.
 * - A record cut short by a crash (torn write) fails its length or CRC: at open the last segment
 *   and the meta file are truncated to their last whole record, the rest replays. Damage inside
 *   an older segment ends that segment's replay; its remaining events are counted as corrupt,
 *   once: they are given up in meta.log, so the segment goes once its readable events are acked.
 *
 * Bounded by `maxBytes` (segments + meta): beyond it the oldest segment is deleted whole, and its
 * events not yet acknowledged are counted as evicted and reported (`onEvicted`), oldest first.
 */
import { closeSync, fdatasync, fdatasyncSync, fstatSync, ftruncateSync, fsyncSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { LocalDecision } from '../../shared/mqtt/payloads.js';
import { makeDirectory, replaceFile, syncDirectory, syncDirectorySync } from '../../shared/atomic-file.js';
import {
  nextRecord,
  readAck,
  readEvent,
  readLate,
  Reader,
  REC_ACK,
  REC_EVENT,
  REC_FLOOR,
  REC_LATE,
  REC_STRING,
  StringTable,
  writeAck,
  writeEvent,
  writeFloor,
  writeLate,
  Writer,
  type JournalEvent,
} from './codec.js';

export interface JournalOptions {
  dir: string;
  /** Disk budget: segments plus meta. */
  maxBytes: number;
  /** fdatasync interval (ms); 0 = after every write. */
  fsyncMs?: number;
  /** Oldest segments deleted for the budget: the events they still held, never sent. */
  onEvicted?: (info: { events: number; bytes: number }) => void;
  /** A background fdatasync failed (reported, not fatal). */
  onError?: (err: Error) => void;
}

export interface OpenReport {
  /** Events not yet acknowledged (with their local decision), to replay. */
  pending: number;
  segments: number;
  /** Bytes cut from the end of the last segment or meta file: a torn last record. */
  tornBytes: number;
}

export interface ReplayEvent extends JournalEvent {
  seq: number;
}

interface Segment {
  first: number;
  /** Events in it (grows while it is the active one). */
  count: number;
  bytes: number;
  file: string;
  sealed: boolean;
  acked: Uint8Array;
  ackedCount: number;
}

const SEGMENT_RE = /^([0-9a-f]{16})(?:-([0-9a-f]{16}))?\.seg$/;
const META = 'meta.log';
const hex = (n: number): string => n.toString(16).padStart(16, '0');

export class Journal {
  readonly #o: Required<Omit<JournalOptions, 'onEvicted' | 'onError'>> & Pick<JournalOptions, 'onEvicted' | 'onError'>;
  readonly #segmentBytes: number;
  readonly #segments: Segment[] = [];
  /** Late local decisions not yet acknowledged as sent with the event. */
  readonly #late = new Map<number, LocalDecision>();
  #nextSeq = 0;
  #floor = 0;
  #segBytes = 0;
  #opened = false;
  #metaFd: number | null = null;
  #metaBytes = 0;
  #activeFd: number | null = null;
  #strings = new StringTable();
  #lastTs = 0;
  #dirty = false;
  /** A segment or the meta file was created, renamed or removed since the directory's last sync. */
  #dirDirty = false;
  #fsyncTimer: NodeJS.Timeout | null = null;
  #closed = false;
  #evictedEvents = 0;
  #corruptEvents = 0;
  readonly #writer = new Writer();

  constructor(opts: JournalOptions) {
    if (!(opts.maxBytes >= 1024 * 1024)) throw new Error(`journal maxBytes must be at least 1 MiB, got ${opts.maxBytes}`);
    this.#o = { fsyncMs: 1000, ...opts };
    // Eviction frees a segment at a time: at most a sixteenth of the budget.
    this.#segmentBytes = Math.min(16 * 1024 * 1024, Math.max(64 * 1024, Math.floor(opts.maxBytes / 16)));
  }

  /** The next sequence number `append` gives. */
  get nextSeq(): number {
    return this.#nextSeq;
  }

  /** Bytes on disk (segments and meta). */
  get bytes(): number {
    return this.#segBytes + this.#metaBytes;
  }

  get evictedEvents(): number {
    return this.#evictedEvents;
  }

  /** Events found damaged (not a torn tail) and skipped in replay. */
  get corruptEvents(): number {
    return this.#corruptEvents;
  }

  /** Events not acknowledged yet (with their local decision when they have one). */
  get pendingEvents(): number {
    let n = 0;
    for (const s of this.#segments) n += s.count - s.ackedCount;
    for (const seq of this.#late.keys()) if (this.#acked(seq)) n++;
    return n;
  }

  /** The oldest sequence number still held. */
  get firstSeq(): number {
    return this.#segments[0]?.first ?? this.#nextSeq;
  }

  async open(): Promise<OpenReport> {
    await makeDirectory(this.#o.dir, { mode: 0o700 });
    let torn = 0;
    const names = (await readdir(this.#o.dir)).map((n) => ({ n, m: SEGMENT_RE.exec(n) })).filter((x) => x.m !== null);
    names.sort((a, b) => (a.m![1]! < b.m![1]! ? -1 : 1));
    for (const { n, m } of names) {
      let file = join(this.#o.dir, n);
      const first = parseInt(m![1]!, 16);
      let count: number;
      if (m![2] !== undefined) {
        count = parseInt(m![2], 16);
      } else {
        // The segment being written when the agent stopped or died: keep its whole records (a
        // torn last one is cut) and seal it; new events go to a new segment.
        const size = (await stat(file)).size;
        const scan = await scanSegment(file);
        count = scan.events;
        if (scan.validBytes < size) {
          torn += size - scan.validBytes;
          await truncate(file, scan.validBytes);
        }
        if (count === 0) {
          await unlink(file);
          continue;
        }
        const sealedFile = join(this.#o.dir, `${hex(first)}-${hex(count)}.seg`);
        await rename(file, sealedFile);
        file = sealedFile;
      }
      const bytes = (await stat(file)).size;
      this.#segments.push({ first, count, bytes, file, sealed: true, acked: new Uint8Array(Math.ceil(count / 8)), ackedCount: 0 });
      this.#segBytes += bytes;
    }
    const last = this.#segments.at(-1);
    this.#nextSeq = last ? last.first + last.count : 0;
    const meta = await this.#loadMeta();
    torn += meta.torn;
    this.#floor = Math.max(this.#floor, this.firstSeq);
    for (const s of [...this.#segments]) this.#maybeDelete(s);
    try {
      await this.#rewriteMeta();
    } catch (err) {
      // A full disk (or a read-only one) at start: the compacted copy cannot be written. The
      // file as it is stays valid (its torn tail cut): new records are appended to it, and the
      // journal opens all the same. Refusing to open left the agent unable to start at all.
      this.#o.onError?.(toError(err));
      this.#appendToMeta(meta.validBytes);
    }
    if (this.#o.fsyncMs > 0) {
      this.#fsyncTimer = setInterval(() => this.#syncSoon(), this.#o.fsyncMs);
      this.#fsyncTimer.unref();
    }
    this.#opened = true;
    return { pending: this.pendingEvents, segments: this.#segments.length, tornBytes: torn };
  }

  /** Journals an event; returns its sequence number once the bytes are written. */
  append(e: JournalEvent): number {
    if (!this.#opened || this.#closed) throw new Error(this.#closed ? 'journal is closed' : 'journal is not open');
    let seg = this.#segments.at(-1);
    if (!seg || seg.sealed || seg.bytes >= this.#segmentBytes) seg = this.#rotate();
    writeEvent(this.#writer, this.#strings, e, this.#lastTs);
    const buf = this.#writer.take();
    try {
      writeAll(this.#activeFd!, buf);
      // With fsyncMs 0 the record counts only once synced; a failed sync fails the append like a
      // failed write. Thrown after the event was counted, it left the segment one event ahead of
      // the sequence numbers, and every later event was acknowledged as its predecessor.
      this.#written(this.#activeFd!);
    } catch (err) {
      // Whatever part reached the file is cut off, and the next event starts a new segment, so
      // the string numbering on disk stays consistent with what later records use. Neither may
      // fail in turn and leave the segment open for the next event (a file that cannot be cut
      // or synced, say): it is then closed and set aside all the same.
      try {
        ftruncateSync(this.#activeFd!, seg.bytes);
        this.#seal(seg);
      } catch {
        this.#abandon(seg);
      }
      throw err;
    }
    this.#lastTs = e.event.ts;
    seg.bytes += buf.length;
    this.#segBytes += buf.length;
    seg.count++;
    if (seg.acked.length * 8 < seg.count) seg.acked = grow(seg.acked);
    const seq = this.#nextSeq++;
    this.#enforceBudget();
    return seq;
  }

  /** The broker acknowledged these events; `withLocal`: the sends carried their local decisions. */
  ack(seqs: readonly number[], withLocal: boolean): void {
    const live = seqs.filter((s) => s >= this.#floor && s < this.#nextSeq);
    if (live.length === 0 || !this.#opened || this.#closed) return;
    writeAck(this.#writer, live, withLocal);
    this.#writeMeta(this.#writer.take());
    const touched = new Set<Segment>();
    for (const seq of live) {
      this.#markAcked(seq, withLocal);
      const seg = this.#segmentOf(seq);
      if (seg) touched.add(seg);
    }
    for (const s of touched) this.#maybeDelete(s);
  }

  /** A local decision made after the event was journalled: it must reach the cloud too. */
  late(seq: number, local: LocalDecision): void {
    if (!this.#opened || this.#closed || seq < this.#floor || seq >= this.#nextSeq) return;
    writeLate(this.#writer, seq, local);
    this.#writeMeta(this.#writer.take());
    this.#late.set(seq, local);
  }

  /** True while the event still has to reach the cloud (with its local decision, if any). */
  pending(seq: number): boolean {
    if (seq < this.#floor || seq >= this.#nextSeq || !this.#segmentOf(seq)) return false;
    return !this.#acked(seq) || this.#late.has(seq);
  }

  /** Reads pending events in order from `fromSeq` (see JournalReader). */
  reader(fromSeq: number): JournalReader {
    return new JournalReader(this, fromSeq);
  }

  /** Syncs and closes the files. What is pending stays for the next open. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#fsyncTimer) clearInterval(this.#fsyncTimer);
    const seg = this.#segments.at(-1);
    if (seg && !seg.sealed) this.#seal(seg);
    if (this.#metaFd !== null) {
      fdatasyncSync(this.#metaFd);
      closeSync(this.#metaFd);
      this.#metaFd = null;
    }
    if (this.#dirDirty) {
      this.#dirDirty = false;
      await syncDirectory(this.#o.dir).catch((err: unknown) => this.#o.onError?.(err instanceof Error ? err : new Error(String(err))));
    }
  }

  // --- for JournalReader -----------------------------------------------------------------------

  /** @internal The segment holding `seq` or the first after it; null past the end. */
  segmentFrom(seq: number): { first: number; count: number; file: string; sealed: boolean; bytes: number } | null {
    for (const s of this.#segments) if (s.first + s.count > seq || (!s.sealed && s.first >= seq)) return s;
    return null;
  }

  /** @internal The local decision recorded after the event was journalled, if still to send. */
  lateLocal(seq: number): LocalDecision | undefined {
    return this.#late.get(seq);
  }

  /**
   * @internal Events in [from, to) that cannot be read back: those still pending are counted as
   * corrupt and given up like acknowledged ones (recorded in meta.log). Their segment is then
   * deleted once its readable events are acknowledged, instead of holding disk budget until
   * evicted, and a restart neither reads them again nor counts them a second time.
   */
  discardCorrupt(from: number, to: number): void {
    const seqs: number[] = [];
    for (let seq = from; seq < to; seq++) if (this.pending(seq)) seqs.push(seq);
    if (seqs.length === 0) return;
    this.#corruptEvents += seqs.length;
    this.ack(seqs, true);
  }

  // --- internals -------------------------------------------------------------------------------

  #segmentOf(seq: number): Segment | undefined {
    for (const s of this.#segments) if (seq >= s.first && seq < s.first + s.count) return s;
    return undefined;
  }

  #acked(seq: number): boolean {
    const s = this.#segmentOf(seq);
    if (!s) return true;
    const i = seq - s.first;
    return (s.acked[i >> 3]! & (1 << (i & 7))) !== 0;
  }

  #markAcked(seq: number, withLocal: boolean): void {
    const s = this.#segmentOf(seq);
    if (!s) return;
    const i = seq - s.first;
    if ((s.acked[i >> 3]! & (1 << (i & 7))) === 0) {
      s.acked[i >> 3]! |= 1 << (i & 7);
      s.ackedCount++;
    }
    if (withLocal) this.#late.delete(seq);
  }

  #maybeDelete(s: Segment): void {
    if (!s.sealed || s.ackedCount < s.count) return;
    for (const seq of this.#late.keys()) if (seq >= s.first && seq < s.first + s.count) return;
    this.#drop(s);
  }

  #drop(s: Segment): void {
    const i = this.#segments.indexOf(s);
    if (i < 0) return;
    this.#segments.splice(i, 1);
    this.#segBytes -= s.bytes;
    for (const seq of [...this.#late.keys()]) if (seq >= s.first && seq < s.first + s.count) this.#late.delete(seq);
    try {
      unlinkSync(s.file);
      this.#dirChanged();
    } catch (err) {
      // Runs in PUBACK callbacks, where a throw ended the process (a file system remounted
      // read-only after I/O errors, say). meta.log holds the acknowledgements: a later open
      // finds the file fully acknowledged and deletes it.
      this.#o.onError?.(toError(err));
    }
    this.#floor = Math.max(this.#floor, this.firstSeq);
    if (this.#metaBytes > Math.max(1024 * 1024, this.#segmentBytes)) {
      try {
        this.#compactMetaSync();
      } catch (err) {
        // The appended meta.log stays valid: compaction is tried again at the next drop.
        this.#o.onError?.(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  #rotate(): Segment {
    const prev = this.#segments.at(-1);
    if (prev && !prev.sealed) this.#seal(prev);
    const first = this.#nextSeq;
    const file = join(this.#o.dir, `${hex(first)}.seg`);
    this.#activeFd = openSync(file, 'w', 0o600);
    this.#dirChanged();
    this.#strings = new StringTable();
    this.#lastTs = 0;
    const seg: Segment = { first, count: 0, bytes: 0, file, sealed: false, acked: new Uint8Array(64), ackedCount: 0 };
    this.#segments.push(seg);
    return seg;
  }

  /** Syncs, closes and renames the active segment with its count: it never changes again. */
  #seal(seg: Segment): void {
    if (this.#activeFd !== null) {
      fdatasyncSync(this.#activeFd);
      closeSync(this.#activeFd);
      this.#activeFd = null;
    }
    seg.sealed = true;
    if (seg.count === 0) {
      unlinkSync(seg.file);
      this.#segments.splice(this.#segments.indexOf(seg), 1);
      this.#segBytes -= seg.bytes;
      return;
    }
    const sealedFile = join(this.#o.dir, `${hex(seg.first)}-${hex(seg.count)}.seg`);
    renameSync(seg.file, sealedFile);
    this.#dirChanged();
    seg.file = sealedFile;
    this.#maybeDelete(seg);
  }

  /** Closes the active segment after a failed write without syncing it (see append). */
  #abandon(seg: Segment): void {
    if (this.#activeFd !== null) {
      try {
        closeSync(this.#activeFd);
      } catch {
        // Closed or not, it is not written again.
      }
      this.#activeFd = null;
    }
    if (seg.sealed) return;
    seg.sealed = true;
    if (seg.count > 0) return; // named without its count: the next open scans and seals it
    try {
      unlinkSync(seg.file);
    } catch {
      // An empty leftover is deleted at the next open.
    }
    this.#segments.splice(this.#segments.indexOf(seg), 1);
    this.#segBytes -= seg.bytes;
  }

  #enforceBudget(): void {
    while (this.bytes > this.#o.maxBytes && this.#segments.length > 1) {
      const oldest = this.#segments[0]!;
      if (!oldest.sealed) break;
      let lost = oldest.count - oldest.ackedCount;
      for (const seq of this.#late.keys()) if (seq >= oldest.first && seq < oldest.first + oldest.count && this.#acked(seq)) lost++;
      this.#evictedEvents += lost;
      const bytes = oldest.bytes;
      this.#drop(oldest);
      this.#o.onEvicted?.({ events: lost, bytes });
    }
  }

  /**
   * Appends to meta.log. A failed write (disk full) is reported, not thrown: it ran in a PUBACK
   * callback or a timer, and a throw there ended the process. The state in memory stands; what
   * the file misses costs at most a resend after a restart (the cloud stores an event once).
   */
  #writeMeta(buf: Buffer): void {
    if (this.#metaFd === null) return;
    try {
      writeAll(this.#metaFd, buf);
    } catch (err) {
      // No torn record in the middle of the file, before the next one.
      try {
        ftruncateSync(this.#metaFd, this.#metaBytes);
      } catch {
        // A torn tail is cut at the next open anyway.
      }
      this.#o.onError?.(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.#metaBytes += buf.length;
    try {
      this.#written(this.#metaFd);
    } catch (err) {
      // The record is written; only its sync failed (fsyncMs 0). Reported, like a failed write.
      this.#o.onError?.(toError(err));
    }
  }

  #written(fd: number): void {
    if (this.#o.fsyncMs === 0) fdatasyncSync(fd);
    else this.#dirty = true;
  }

  /** Directory entries changed: synced with the next data sync (at once when every write is). */
  #dirChanged(): void {
    if (this.#o.fsyncMs === 0) syncDirectorySync(this.#o.dir);
    else this.#dirDirty = true;
  }

  #syncSoon(): void {
    if ((!this.#dirty && !this.#dirDirty) || this.#closed) return;
    if (this.#dirDirty) {
      this.#dirDirty = false;
      syncDirectory(this.#o.dir).catch((err: unknown) => {
        this.#dirDirty = true;
        if (!this.#closed) this.#o.onError?.(err instanceof Error ? err : new Error(String(err)));
      });
    }
    if (!this.#dirty) return;
    this.#dirty = false;
    for (const fd of [this.#activeFd, this.#metaFd]) {
      if (fd === null) continue;
      fdatasync(fd, (err) => {
        if (err && !this.#closed) this.#o.onError?.(err);
      });
    }
  }

  /** Reads meta.log; returns the bytes of its torn tail and where its valid records end. */
  async #loadMeta(): Promise<{ torn: number; validBytes: number }> {
    const file = join(this.#o.dir, META);
    let buf: Buffer;
    try {
      buf = await readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { torn: 0, validBytes: 0 };
      throw err;
    }
    let offset = 0;
    for (;;) {
      const rec = nextRecord(buf, offset);
      if (typeof rec === 'string') break;
      offset = rec.next;
      const r = new Reader(rec.payload);
      const type = r.byte();
      if (type === REC_ACK) {
        const { seqs, withLocal } = readAck(r);
        for (const seq of seqs) this.#markAcked(seq, withLocal);
      } else if (type === REC_LATE) {
        const { seq, local } = readLate(r);
        if (this.#segmentOf(seq)) this.#late.set(seq, local);
      } else if (type === REC_FLOOR) {
        this.#floor = Math.max(this.#floor, r.varint());
      }
    }
    return { torn: buf.length - offset, validBytes: offset };
  }

  /** Opens meta.log for appending as it is, cut back to its last whole record (see open). */
  #appendToMeta(validBytes: number): void {
    try {
      const fd = openSync(join(this.#o.dir, META), 'a', 0o600);
      try {
        ftruncateSync(fd, validBytes);
      } catch (err) {
        closeSync(fd);
        throw err;
      }
      this.#metaFd = fd;
      this.#metaBytes = validBytes;
    } catch (err) {
      // Acknowledgements then live in memory only: at worst a restart sends events again.
      this.#o.onError?.(toError(err));
    }
  }

  /** Writes meta.log afresh with what is still relevant (atomically) and opens it for appending. */
  async #rewriteMeta(): Promise<void> {
    const file = join(this.#o.dir, META);
    const content = this.#metaContent();
    await replaceFile(file, content, { sync: true });
    this.#metaFd = openSync(file, 'a', 0o600);
    this.#metaBytes = content.length;
  }

  #compactMetaSync(): void {
    if (this.#metaFd === null) return;
    const file = join(this.#o.dir, META);
    const content = this.#metaContent();
    const tmp = `${file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeAll(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    this.#dirChanged();
    closeSync(this.#metaFd);
    this.#metaFd = openSync(file, 'a', 0o600);
    this.#metaBytes = content.length;
  }

  #metaContent(): Buffer {
    const w = this.#writer;
    writeFloor(w, this.#floor);
    for (const s of this.#segments) {
      const seqs: number[] = [];
      for (let i = 0; i < s.count; i++) if (s.acked[i >> 3]! & (1 << (i & 7))) seqs.push(s.first + i);
      if (seqs.length > 0) writeAck(w, seqs, false);
    }
    for (const [seq, local] of this.#late) writeLate(w, seq, local);
    return w.take();
  }
}

/**
 * Reads a journal's pending events in sequence order, from a starting point, in chunks (async
 * file reads). Segments deleted or evicted meanwhile are skipped; the active segment is read up to
 * what has been written. Each returned event carries its local decision, late ones merged in.
 */
export class JournalReader {
  readonly #j: Journal;
  #seq: number;
  #segFirst = -1;
  #fd: number | null = null;
  #fileOffset = 0;
  #buf = Buffer.alloc(0);
  #strings = new StringTable();
  #lastTs = 0;
  #segSeq = 0;

  constructor(journal: Journal, fromSeq: number) {
    this.#j = journal;
    this.#seq = fromSeq;
  }

  /** The sequence number the next read starts from. */
  get position(): number {
    return this.#seq;
  }

  /** Up to `max` pending events; an empty array means the reader reached the end of the journal. */
  read(max: number): ReplayEvent[] {
    const out: ReplayEvent[] = [];
    while (out.length < max) {
      const seg = this.#j.segmentFrom(this.#seq);
      if (!seg) break;
      if (seg.first !== this.#segFirst) this.#openSegment(seg);
      if (this.#seq < seg.first) this.#seq = seg.first;
      const ev = this.#next(seg);
      if (ev === 'end') {
        if (!seg.sealed) break; // the active segment: nothing more written yet
        // The file ended before the count its name gives (cut or emptied on disk): the events it
        // lost are damage too, counted like a record that does not read back, not skipped unseen.
        if (this.#segSeq < seg.first + seg.count) this.#damaged(seg);
        this.#seq = seg.first + seg.count;
        this.#closeFile();
        continue;
      }
      if (ev === null) continue;
      out.push(ev);
    }
    return out;
  }

  close(): void {
    this.#closeFile();
  }

  #openSegment(seg: { first: number; file: string }): void {
    this.#closeFile();
    this.#segFirst = seg.first;
    this.#fd = openSync(seg.file, 'r');
    this.#fileOffset = 0;
    this.#buf = Buffer.alloc(0);
    this.#strings = new StringTable();
    this.#lastTs = 0;
    this.#segSeq = seg.first;
  }

  #closeFile(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
    this.#segFirst = -1;
  }

  /** The next pending event of the segment, null for a record that is not one, 'end' at its end. */
  #next(seg: { first: number; count: number; sealed: boolean; file: string }): ReplayEvent | null | 'end' {
    for (;;) {
      const rec = nextRecord(this.#buf, 0);
      if (rec === 'partial') {
        if (!this.#fill(seg)) return 'end';
        continue;
      }
      if (rec === 'corrupt') return this.#damaged(seg);
      this.#buf = this.#buf.subarray(rec.next);
      const r = new Reader(rec.payload);
      const type = r.byte();
      if (type === REC_STRING) {
        try {
          this.#strings.define(r);
        } catch {
          return this.#damaged(seg);
        }
        continue;
      }
      if (type !== REC_EVENT) continue;
      const seq = this.#segSeq++;
      let e: JournalEvent;
      try {
        e = readEvent(r, this.#strings, this.#lastTs);
      } catch {
        // A whole record (length and checksum right) that does not decode, e.g. a time beyond
        // what the codec holds exactly (written before observe() refused those): that event is
        // skipped and counted as corrupt, the others replay. Thrown from here, it failed every
        // replay, at every start, and the events after it were never sent.
        if (seq >= this.#seq) {
          this.#seq = seq + 1;
          this.#j.discardCorrupt(seq, seq + 1);
        }
        continue;
      }
      this.#lastTs = e.event.ts;
      if (seq < this.#seq) continue;
      this.#seq = seq + 1;
      if (!this.#j.pending(seq)) return null;
      const late = this.#j.lateLocal(seq);
      if (late && !e.event.local) e.event.local = late;
      return { seq, ...e };
    }
  }

  /** The rest of the segment cannot be read: its events are counted as corrupt. */
  #damaged(seg: { first: number; count: number; sealed: boolean }): 'end' {
    if (seg.sealed) {
      this.#j.discardCorrupt(this.#segSeq, seg.first + seg.count);
      this.#segSeq = seg.first + seg.count;
    }
    this.#buf = Buffer.alloc(0);
    return 'end';
  }

  /** Reads the next chunk of the segment; false when there is nothing more in the file yet. */
  #fill(seg: { file: string }): boolean {
    if (this.#fd === null) return false;
    let size: number;
    try {
      size = fstatSync(this.#fd).size;
    } catch {
      return false;
    }
    if (this.#fileOffset >= size) return false;
    const chunk = Buffer.allocUnsafe(Math.min(1024 * 1024, size - this.#fileOffset));
    const n = readSync(this.#fd, chunk, 0, chunk.length, this.#fileOffset);
    if (n === 0) return false;
    this.#fileOffset += n;
    this.#buf = this.#buf.length === 0 ? chunk.subarray(0, n) : Buffer.concat([this.#buf, chunk.subarray(0, n)]);
    void seg;
    return true;
  }
}

/** Counts a segment's whole records and events; where its valid data ends. */
async function scanSegment(file: string): Promise<{ events: number; validBytes: number }> {
  const buf = await readFile(file);
  let offset = 0;
  let events = 0;
  for (;;) {
    const rec = nextRecord(buf, offset);
    if (typeof rec === 'string') break;
    if (rec.payload[0] === REC_EVENT) events++;
    offset = rec.next;
  }
  return { events, validBytes: offset };
}

async function truncate(file: string, size: number): Promise<void> {
  const h = await open(file, 'r+');
  try {
    await h.truncate(size);
    await h.sync();
  } finally {
    await h.close();
  }
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function writeAll(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}

function grow(a: Uint8Array): Uint8Array {
  const b = new Uint8Array(a.length * 2);
  b.set(a);
  return b;
}
