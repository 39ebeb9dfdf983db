/**
 * A remediation command from arrival to acknowledged ack: applied once (CommandHandler), its ack
 * journalled (AckJournal) and then published; the journal forgets it on the PUBACK. stop() waits
 * for commands still being applied (`untilIdle`), so a command applied just before a stop is
 * acked before the disconnect, and one the broker has not acknowledged by then is sent at the
 * next start (with a state dir).
 */
import type { Command, CommandAck } from '../shared/mqtt/payloads.js';
import { AckJournal, type JournalledAck } from './ack-journal.js';
import type { CommandHandler, CommandOutcome } from './command-handler.js';
import { Waiters } from './waiters.js';

export interface CommandFlowOptions {
  handler: CommandHandler;
  /** Null: acks are kept in memory only. */
  journalFile: string | null;
  /** QoS 1 publish of an ack; resolves true on PUBACK. */
  publish: (tenantId: string, ack: CommandAck) => Promise<boolean>;
  onError: (err: Error) => void;
}

export class CommandFlow {
  readonly #o: CommandFlowOptions;
  readonly #journal: AckJournal;
  readonly #idle = new Waiters();
  #inFlight = 0;
  /** Acks an earlier run journalled and never saw acknowledged. */
  #replay: JournalledAck[] = [];

  constructor(opts: CommandFlowOptions) {
    this.#o = opts;
    this.#journal = new AckJournal(opts.journalFile);
  }

  get journalFile(): string | null {
    return this.#o.journalFile;
  }

  /** Commands being applied or journalled now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Acks not yet acknowledged by the broker. */
  get pendingAcks(): number {
    return this.#journal.size;
  }

  /** Reads the journal of an earlier run (call before connecting). */
  async load(): Promise<{ loaded: number; error?: string }> {
    const r = await this.#journal.load();
    this.#replay = this.#journal.pending();
    return r;
  }

  /**
   * Publishes the earlier run's acks, once (on the first connection). Acks of this run that are
   * waiting while offline sit in mqtt.js's session store, which resends them by itself.
   */
  replay(): void {
    for (const a of this.#replay.splice(0)) this.#send(a.tenant_id, a.ack);
  }

  async handle(tenantId: string, command: Command): Promise<CommandOutcome> {
    this.#inFlight++;
    try {
      const outcome = await this.#o.handler.handle(tenantId, command);
      try {
        await this.#journal.add({ tenant_id: tenantId, ack: outcome.ack });
      } catch (err) {
        this.#o.onError(err instanceof Error ? err : new Error(String(err)));
      }
      this.#send(tenantId, outcome.ack);
      return outcome;
    } finally {
      this.#inFlight--;
      this.#idle.wake();
    }
  }

  /** True once no command is being applied, false when `timeoutMs` passed first. */
  untilIdle(timeoutMs: number): Promise<boolean> {
    return this.#idle.until(() => this.#inFlight === 0, timeoutMs);
  }

  /** Resolves when the journal file is written. */
  settled(): Promise<void> {
    return this.#journal.settled();
  }

  #send(tenantId: string, ack: CommandAck): void {
    void this.#o.publish(tenantId, ack).then((acked) => {
      if (acked) this.#journal.confirm(ack.id).catch((err: unknown) => this.#o.onError(err instanceof Error ? err : new Error(String(err))));
    });
  }
}
