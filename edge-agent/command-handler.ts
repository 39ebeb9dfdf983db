/**
 * Remediation commands, applied at most once per command id. QoS 1 and the persistent session
 * mean a command can arrive twice (redelivery after a lost PUBACK, a cloud retry); the second
 * copy is answered with the first copy's ack, byte for byte, without touching the enforcer.
 */
import type { IdFactory } from '../shared/ids.js';
import { SCHEMA_VERSION, type Command, type CommandAck } from '../shared/mqtt/payloads.js';
import type { CommandResult, Enforcer } from './enforcer.js';
import { LruMap } from './lru.js';

const MAX_REASON = 500;

export interface CommandOutcome {
  ack: CommandAck;
  /** True when this command id was seen before and the stored ack is being repeated. */
  duplicate: boolean;
}

export interface CommandHandlerOptions {
  enforcer: Enforcer;
  now: () => number;
  newId: IdFactory;
  /** How many recent command ids are remembered for deduplication. */
  cacheSize: number;
}

export class CommandHandler {
  readonly #opts: CommandHandlerOptions;
  // Promises, not results: a redelivery that arrives while the first copy is still being
  // applied must wait for that outcome rather than apply the command a second time.
  readonly #recent: LruMap<string, Promise<CommandAck>>;
  #applied = 0;

  constructor(opts: CommandHandlerOptions) {
    this.#opts = opts;
    this.#recent = new LruMap(opts.cacheSize);
  }

  /** Commands the enforcer reported as applied (first deliveries only). */
  get applied(): number {
    return this.#applied;
  }

  async handle(tenantId: string, command: Command): Promise<CommandOutcome> {
    const seen = this.#recent.get(command.id);
    if (seen) return { ack: await seen, duplicate: true };
    // Checked before expiry: a command applied before a restart and redelivered after its
    // expires_at is still answered with its first result.
    const earlier = this.#previousResult(tenantId, command.id);
    if (earlier) {
      const ack = this.#ack(command, earlier);
      this.#recent.set(command.id, Promise.resolve(ack));
      return { ack, duplicate: true };
    }
    const pending = this.#execute(tenantId, command);
    this.#recent.set(command.id, pending);
    return { ack: await pending, duplicate: false };
  }

  #previousResult(tenantId: string, commandId: string): CommandResult | undefined {
    try {
      return this.#opts.enforcer.previousResult?.(tenantId, commandId);
    } catch {
      // An unreadable memory is no memory: the command is then applied as a first delivery.
      return undefined;
    }
  }

  async #execute(tenantId: string, command: Command): Promise<CommandAck> {
    if (command.expires_at < this.#opts.now()) return this.#ack(command, { status: 'failed', reason: 'expired' });
    let result: CommandResult;
    try {
      result = await this.#opts.enforcer.applyCommand(tenantId, command);
    } catch (err) {
      result = { status: 'failed', reason: err instanceof Error ? err.message : String(err) };
    }
    if (result.status === 'applied') this.#applied++;
    return this.#ack(command, result);
  }

  #ack(command: Command, result: CommandResult): CommandAck {
    const ack: CommandAck = {
      v: SCHEMA_VERSION,
      id: this.#opts.newId(),
      command_id: command.id,
      status: result.status,
      ts: this.#opts.now(),
    };
    if (result.reason !== undefined) ack.reason = result.reason.slice(0, MAX_REASON);
    return ack;
  }
}
