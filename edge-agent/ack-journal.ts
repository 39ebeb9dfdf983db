/**
 * Command acks not yet acknowledged by the broker (PUBACK). An ack is recorded before it is
 * published and forgotten on its PUBACK; with a file (the agent's --state-dir), what is still
 * recorded when the agent stops (stopped mid-publish, or while offline) is published at its next
 * start. Without that, a command applied just before a stop stays "delivered" in the cloud
 * forever while the tower holds it as applied. The cloud takes an ack once, so sending one twice
 * (after a PUBACK lost in a crash) is harmless.
 *
 * The file is rewritten whole (temp file, fsync, rename) after changes: it holds only the
 * unacknowledged ones. Writes are coalesced: changes made while one is in flight go out together
 * in the next. One write per change made a flood of commands (or a broker that acknowledges no
 * ack, so the file holds MAX_ACKS of them) queue one full rewrite each, and every ack waited for
 * all the rewrites queued before its own.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { CommandAckSchema, type CommandAck } from '../shared/mqtt/payloads.js';
import { makeDirectory, replaceFile } from '../shared/atomic-file.js';
import { CoalescedWrites } from './coalesced-writes.js';

export interface JournalledAck {
  tenant_id: string;
  ack: CommandAck;
}

const FileSchema = z.object({ v: z.literal(1), acks: z.array(z.object({ tenant_id: z.string().min(1), ack: CommandAckSchema })) });

/** Unacknowledged acks kept at most; beyond it the oldest are dropped (a tower offline for weeks). */
export const MAX_ACKS = 10_000;

export function ackJournalFile(stateDir: string, towerId: string): string {
  return join(stateDir, `acks-${towerId}.json`);
}

export class AckJournal {
  readonly #file: string | null;
  readonly #pending = new Map<string, JournalledAck>();
  /** Rewrites of the file, coalesced (null: in memory only). */
  readonly #writes: CoalescedWrites | null;

  /** `file` null: in memory only (the agent has no state dir). */
  constructor(file: string | null) {
    this.#file = file;
    this.#writes = file === null ? null : new CoalescedWrites(() => writeAtomically(file, JSON.stringify({ v: 1, acks: [...this.#pending.values()] })));
  }

  get size(): number {
    return this.#pending.size;
  }

  /** Reads acks left by an earlier run. An unreadable file is reported and treated as empty. */
  async load(): Promise<{ loaded: number; error?: string }> {
    if (!this.#file) return { loaded: 0 };
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { loaded: 0 };
      return { loaded: 0, error: (err as Error).message };
    }
    try {
      const parsed = FileSchema.parse(JSON.parse(text));
      for (const a of parsed.acks) this.#pending.set(a.ack.id, a);
      return { loaded: parsed.acks.length };
    } catch (err) {
      return { loaded: 0, error: `unreadable ack journal: ${(err as Error).message}` };
    }
  }

  pending(): JournalledAck[] {
    return [...this.#pending.values()];
  }

  /** Records an ack before it is published; resolves once it is on disk. */
  add(entry: JournalledAck): Promise<void> {
    this.#pending.set(entry.ack.id, entry);
    while (this.#pending.size > MAX_ACKS) this.#pending.delete(this.#pending.keys().next().value!);
    return this.#persist();
  }

  /** The broker has the ack (PUBACK): forget it. */
  confirm(ackId: string): Promise<void> {
    if (!this.#pending.delete(ackId)) return Promise.resolve();
    return this.#persist();
  }

  /** Resolves when every write issued so far is done. */
  settled(): Promise<void> {
    return this.#writes?.settled() ?? Promise.resolve();
  }

  /** Resolves once a write that started after this call has completed (the callers see its error). */
  #persist(): Promise<void> {
    return this.#writes?.request() ?? Promise.resolve();
  }
}

async function writeAtomically(file: string, text: string): Promise<void> {
  await makeDirectory(dirname(file), { mode: 0o700 });
  await replaceFile(file, text, { sync: true });
}
