/**
 * A remediation command from arrival to acknowledged ack: applied once (CommandHandler), its ack
 * journalled (AckJournal) and then published; the journal forgets it on the PUBACK. stop() waits
 * for commands still being applied (`untilIdle`), so a command applied just before a stop is
 * acked before the disconnect, and one the broker has not acknowledged by then is sent at the
 * next start (with a state dir).
 *
 * At most MAX_ACKS_IN_FLIGHT acks await their PUBACK at a time; the others wait their turn here.
 * mqtt.js keeps every unacknowledged publish in memory, so a broker that takes commands but never
 * acknowledges the acks (or a flood of commands while offline) grew the agent without bound.
 */
import type { Command, CommandAck } from '../shared/mqtt/payloads.js';
import { AckJournal, MAX_ACKS, type JournalledAck } from './ack-journal.js';
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

/** Acks published and awaiting their PUBACK, at most; usage has its own cap (maxInflight). */
export const MAX_ACKS_IN_FLIGHT = 100;
/** Acks waiting for a turn, at most: as many as the ack journal keeps (the oldest go first). */
const MAX_ACKS_WAITING = MAX_ACKS;

export class CommandFlow {
  readonly #o: CommandFlowOptions;
  readonly #journal: AckJournal;
  readonly #idle = new Waiters();
  #inFlight = 0;
  /** Acks an earlier run journalled and never saw acknowledged. */
  #replay: JournalledAck[] = [];
  /** Acks waiting for one of the MAX_ACKS_IN_FLIGHT turns, oldest first. */
  readonly #waiting: JournalledAck[] = [];
  #sending = 0;
  #dropped = 0;

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

  /** Acks published and not yet acknowledged by the broker. */
  get sending(): number {
    return this.#sending;
  }

  /** Acks never published because too many were waiting (the broker acknowledged none). */
  get droppedAcks(): number {
    return this.#dropped;
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
   * waiting while offline wait in the publish (the uplink sends them once it is up again).
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
    this.#waiting.push({ tenant_id: tenantId, ack });
    if (this.#waiting.length > MAX_ACKS_WAITING) {
      this.#waiting.shift();
      if (++this.#dropped === 1 || this.#dropped % 1000 === 0) {
        this.#o.onError(new Error(`${this.#dropped} command acks dropped: ${MAX_ACKS_WAITING} waiting for the broker to acknowledge earlier ones`));
      }
    }
    this.#pump();
  }

  #pump(): void {
    while (this.#sending < MAX_ACKS_IN_FLIGHT && this.#waiting.length > 0) {
      const { tenant_id, ack } = this.#waiting.shift()!;
      this.#sending++;
      void this.#o.publish(tenant_id, ack).then((acked) => {
        this.#sending--;
        if (acked) this.#journal.confirm(ack.id).catch((err: unknown) => this.#o.onError(err instanceof Error ? err : new Error(String(err))));
        this.#pump();
      });
    }
  }
}
