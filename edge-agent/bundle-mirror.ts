/**
 * The tower's copy, under `--state-dir`, of the retained documents it decides from: policy bundle
 * heads and parts, directory heads and parts, as the broker last delivered each topic. Without it
 * an agent restarted while the broker was unreachable (a power cut at the tower during a backhaul
 * outage) held no bundle and could decide nothing itself until it reconnected; with it, it starts
 * from what it held before.
 *
 * - One file per topic, holding that topic's last payload (a retained message replaces the one
 *   before it; an empty payload, the broker clearing the topic, deletes the file), named by the
 *   topic in base64url, and beside it (`.prev`) the payload before that. Written to a temporary
 *   file and renamed, so a kill leaves whole payloads, never half of one. The previous payload is
 *   what keeps a kill between two files harmless: a new version's parts come before its head
 *   (and on a fresh connection in any order), so a run killed after copying some of them holds
 *   the parts of the head it has, or the head of the parts it has, among the two. Each write
 *   and removal is fsync'ed, the file and then the directory, before the next one starts: the copy
 *   exists for a power cut at the tower during a backhaul outage, so it must outlive one (a
 *   rename not yet on disk could come back as the payload before it, or as nothing).
 * - At start the files are read back and fed through the path broker messages take
 *   (DownlinkDispatch → EdgePolicy), so a file is checked exactly as a retained message is:
 *   schemas, each part's content against the ref its head names, versions (an older document
 *   never replaces a newer one). What fails is dropped and counted there, never trusted. The
 *   agent feeds previous heads first, then every part, then the last heads: an older document
 *   completes before a newer head that may miss parts replaces it as the pending one.
 * - A payload equal to the one on disk is not written again (every reconnect redelivers the
 *   retained documents); bounded by `maxBytes` (the agent's document budget), each file charged
 *   `fileOverheadBytes` beyond its payload (a file takes a disk block however small; so a flood
 *   of tiny parts is bounded in files, not only in bytes): a topic that would
 *   pass it is not copied (`skipped`).
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { makeDirectory, replaceFile, syncDirectory } from '../shared/atomic-file.js';

export function bundleMirrorDir(stateDir: string, towerId: string): string {
  return join(stateDir, `bundles-${towerId}`);
}

/** The file holding a topic's copy in `dir`. */
export function mirrorFile(dir: string, topic: string): string {
  return join(dir, nameOf(topic));
}

export interface MirroredMessage {
  topic: string;
  payload: Buffer;
  /** The payload before the topic's last one. */
  previous: boolean;
}

export interface BundleMirrorOptions {
  maxBytes: number;
  /** What each file costs beyond its payload (default FILE_OVERHEAD_BYTES). */
  fileOverheadBytes?: number;
  /** A write or delete failed (disk full, permissions): the copy lags until the topic's next message. */
  onError: (err: Error) => void;
}

/** A file's cost beyond its payload: one block of a common file system. */
export const FILE_OVERHEAD_BYTES = 4096;

const TMP = '.tmp';
const PREV = '.prev';

const digest = (payload: Buffer): string => createHash('sha256').update(payload).digest('base64url');

export class BundleMirror {
  readonly #dir: string;
  readonly #o: BundleMirrorOptions;
  /** Per topic on disk (or being written): its last payload's digest and size, and the previous payload's size. */
  readonly #held = new Map<string, { digest: string; bytes: number; prevBytes: number }>();
  #bytes = 0;
  readonly #overhead: number;
  #writing: Promise<void> = Promise.resolve();
  /** Topics not copied because the copy would pass maxBytes. */
  skipped = 0;

  constructor(dir: string, opts: BundleMirrorOptions) {
    this.#dir = dir;
    this.#o = opts;
    this.#overhead = opts.fileOverheadBytes ?? FILE_OVERHEAD_BYTES;
  }

  /** What the copy holds, in bytes: payloads and each file's overhead. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Reads what an earlier run copied. A file that cannot be read or whose name is not a topic's is
   * removed and counted in `unreadable`; leftover temporary files are removed.
   */
  async load(): Promise<{ messages: MirroredMessage[]; unreadable: number }> {
    await makeDirectory(this.#dir, { mode: 0o700 });
    const messages: MirroredMessage[] = [];
    let unreadable = 0;
    // Last payloads first, so that the byte bound keeps them rather than previous ones.
    const names = (await readdir(this.#dir)).sort((a, b) => Number(a.endsWith(PREV)) - Number(b.endsWith(PREV)));
    for (const name of names) {
      const path = join(this.#dir, name);
      if (name.endsWith(TMP)) {
        await rm(path, { force: true, recursive: true });
        continue;
      }
      const previous = name.endsWith(PREV);
      const topic = topicOf(previous ? name.slice(0, -PREV.length) : name);
      let payload: Buffer | null = null;
      if (topic !== null) {
        try {
          payload = await readFile(path);
        } catch {
          payload = null;
        }
      }
      if (topic === null || payload === null) {
        unreadable++;
        await rm(path, { force: true, recursive: true });
        continue;
      }
      const cost = payload.length + this.#overhead;
      if (payload.length === 0 || this.#bytes + cost > this.#o.maxBytes) {
        await rm(path, { force: true });
        continue;
      }
      const held = this.#held.get(topic);
      if (previous && held) {
        held.prevBytes = cost;
      } else {
        // A previous payload alone (a kill between the two renames of a write) is the last one now.
        if (previous) await rename(path, mirrorFile(this.#dir, topic));
        this.#held.set(topic, { digest: digest(payload), bytes: cost, prevBytes: 0 });
      }
      this.#bytes += cost;
      messages.push({ topic, payload, previous: previous && held !== undefined });
    }
    return { messages, unreadable };
  }

  /** Copies the topic's payload (an empty one removes the copy); writes take turns, in order. */
  record(topic: string, payload: Buffer): void {
    const before = this.#held.get(topic);
    const path = mirrorFile(this.#dir, topic);
    if (payload.length === 0) {
      if (!before) return;
      this.#held.delete(topic);
      this.#bytes -= before.bytes + before.prevBytes;
      this.#queue(topic, async () => {
        await rm(path, { force: true });
        await rm(path + PREV, { force: true });
        await syncDirectory(this.#dir);
      });
      return;
    }
    const d = digest(payload);
    if (before?.digest === d) return;
    // The last payload becomes the previous one; the one before that goes.
    const cost = payload.length + this.#overhead;
    const bytes = this.#bytes - (before?.prevBytes ?? 0) + cost;
    if (bytes > this.#o.maxBytes) {
      this.skipped++;
      return;
    }
    this.#held.set(topic, { digest: d, bytes: cost, prevBytes: before?.bytes ?? 0 });
    this.#bytes = bytes;
    this.#queue(topic, async () => {
      if (before) await rename(path, path + PREV);
      await replaceFile(path, payload, { sync: true });
    });
  }

  /** Resolves once every copy started has been written (or has failed). */
  settled(): Promise<void> {
    return this.#writing;
  }

  #queue(topic: string, write: () => Promise<unknown>): void {
    this.#writing = this.#writing.then(write).then(
      () => undefined,
      (err: unknown) => {
        // What this topic's file holds now is unknown: forgotten, so its next message is written.
        const entry = this.#held.get(topic);
        if (entry) {
          this.#held.delete(topic);
          this.#bytes -= entry.bytes + entry.prevBytes;
        }
        this.#o.onError(err instanceof Error ? err : new Error(String(err)));
      },
    );
  }
}

function nameOf(topic: string): string {
  return Buffer.from(topic, 'utf8').toString('base64url');
}

/** The topic a file name encodes, or null when it is not one `nameOf` makes. */
function topicOf(name: string): string | null {
  if (!/^[A-Za-z0-9_-]+$/.test(name)) return null;
  const topic = Buffer.from(name, 'base64url').toString('utf8');
  return nameOf(topic) === name ? topic : null;
}
