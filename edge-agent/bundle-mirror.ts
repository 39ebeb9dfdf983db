/**
 * The tower's copy, under `--state-dir`, of the retained documents it decides from: policy bundle
 * heads and parts, directory heads and parts, as the broker last delivered each topic. Without it
 * an agent restarted while the broker was unreachable (a power cut at the tower during a backhaul
 * outage) held no bundle and could decide nothing itself until it reconnected; with it, it starts
 * from what it held before.
 *
 * - One file per topic, holding that topic's last payload (a retained message replaces the one
 *   before it; an empty payload, the broker clearing the topic, deletes the file), named by the
 *   topic in base64url. Written to a temporary file and renamed over the old one, so a kill
 *   leaves the old or the new payload, never half of one. Not fsync'ed: a copy lost in a power
 *   cut comes back from the broker, and a damaged one fails its checks.
 * - At start the files are read back and fed through the path broker messages take
 *   (DownlinkDispatch → EdgePolicy), so a file is checked exactly as a retained message is:
 *   schemas, each part's content against the ref its head names, versions (an older document
 *   never replaces a newer one). What fails is dropped and counted there, never trusted.
 * - A payload equal to the one on disk is not written again (every reconnect redelivers the
 *   retained documents); bounded by `maxBytes` (the agent's document budget): a topic that would
 *   pass it is not copied (`skipped`).
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

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
}

export interface BundleMirrorOptions {
  maxBytes: number;
  /** A write or delete failed (disk full, permissions): the copy lags until the topic's next message. */
  onError: (err: Error) => void;
}

const TMP = '.tmp';

const digest = (payload: Buffer): string => createHash('sha256').update(payload).digest('base64url');

export class BundleMirror {
  readonly #dir: string;
  readonly #o: BundleMirrorOptions;
  /** Per topic on disk (or being written): its payload's digest and size. */
  readonly #held = new Map<string, { digest: string; bytes: number }>();
  #bytes = 0;
  #writing: Promise<void> = Promise.resolve();
  /** Topics not copied because the copy would pass maxBytes. */
  skipped = 0;

  constructor(dir: string, opts: BundleMirrorOptions) {
    this.#dir = dir;
    this.#o = opts;
  }

  /** Bytes of payload the copy holds. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Reads what an earlier run copied. A file that cannot be read or whose name is not a topic is
   * removed and counted in `unreadable`; leftover temporary files are removed.
   */
  async load(): Promise<{ messages: MirroredMessage[]; unreadable: number }> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const messages: MirroredMessage[] = [];
    let unreadable = 0;
    for (const name of await readdir(this.#dir)) {
      const path = join(this.#dir, name);
      const topic = name.endsWith(TMP) ? null : topicOf(name);
      if (topic === null) {
        if (!name.endsWith(TMP)) unreadable++;
        await rm(path, { force: true, recursive: true });
        continue;
      }
      let payload: Buffer;
      try {
        payload = await readFile(path);
      } catch {
        unreadable++;
        await rm(path, { force: true, recursive: true });
        continue;
      }
      if (payload.length === 0 || this.#bytes + payload.length > this.#o.maxBytes) {
        await rm(path, { force: true });
        continue;
      }
      this.#held.set(topic, { digest: digest(payload), bytes: payload.length });
      this.#bytes += payload.length;
      messages.push({ topic, payload });
    }
    return { messages, unreadable };
  }

  /** Copies the topic's payload (an empty one removes the copy); writes take turns, in order. */
  record(topic: string, payload: Buffer): void {
    const before = this.#held.get(topic);
    if (payload.length === 0) {
      if (!before) return;
      this.#held.delete(topic);
      this.#bytes -= before.bytes;
      this.#queue(topic, () => rm(mirrorFile(this.#dir, topic), { force: true }));
      return;
    }
    const d = digest(payload);
    if (before?.digest === d) return;
    const bytes = this.#bytes - (before?.bytes ?? 0) + payload.length;
    if (bytes > this.#o.maxBytes) {
      this.skipped++;
      return;
    }
    const entry = { digest: d, bytes: payload.length };
    this.#held.set(topic, entry);
    this.#bytes = bytes;
    const path = mirrorFile(this.#dir, topic);
    this.#queue(topic, async () => {
      await writeFile(path + TMP, payload, { mode: 0o600 });
      await rename(path + TMP, path);
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
          this.#bytes -= entry.bytes;
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
