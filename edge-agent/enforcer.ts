/**
 * The port between the agent and the tower equipment that actually enforces decisions
 * (blocking a device, throttling an app, ...). The agent owns MQTT, batching and idempotency;
 * an Enforcer only applies what it is told.
 */
import type { Command, Decision } from '../shared/mqtt/payloads.js';

export interface CommandResult {
  status: 'applied' | 'failed';
  reason?: string;
}

/** The command types that deny usage at the tower while they are in force. */
export type BlockingCommandType = 'block_device' | 'block_app' | 'quarantine';

/** An active block that answers a usage event at the edge, without waiting for the cloud. */
export interface BlockStatus {
  blocked: true;
  /** The command that put the block in force. */
  command_id: string;
  type: BlockingCommandType;
}

export interface Enforcer {
  /**
   * Called once per decision: every cloud decision, and every decision the agent answered
   * locally from `isBlocked` (whose later cloud decision is then not applied again) or for an
   * unknown device (tenantId null, reason 'unknown_device'). Errors (thrown or rejected) are
   * reported, never fatal.
   */
  applyDecision(tenantId: string | null, decision: Decision): void | Promise<void>;
  /** Called at most once per command id (the agent deduplicates redeliveries). */
  applyCommand(tenantId: string, command: Command): Promise<CommandResult>;
  /**
   * Optional: the block in force for this usage, if any. The agent then denies the event at
   * once (reason 'blocked') and still reports it to the cloud for the record. Called for every
   * observed event of a known tenant, so it must be cheap; a throw counts as "not blocked".
   */
  isBlocked?(tenantId: string, deviceId: string, app: string): BlockStatus | null;
  /**
   * Optional: the result this enforcer already gave a command id, remembered beyond the agent's
   * in-memory deduplication (e.g. across a restart). The agent re-acks it and does not apply it.
   */
  previousResult?(tenantId: string, commandId: string): CommandResult | undefined;
}

/** Default enforcer: counts what it was asked to do and applies nothing. */
export class LoggingEnforcer implements Enforcer {
  decisions = 0;
  denies = 0;
  commands = 0;

  applyDecision(_tenantId: string, decision: Decision): void {
    this.decisions++;
    if (decision.effect === 'deny') this.denies++;
  }

  async applyCommand(): Promise<CommandResult> {
    this.commands++;
    return { status: 'applied' };
  }
}

export interface RecordedDecision {
  tenantId: string | null;
  decision: Decision;
}

export interface RecordedCommand {
  tenantId: string;
  command: Command;
}

/**
 * Keeps every decision and command in memory, for tests and the simulator. `commandResult`
 * decides the outcome of each command (default: applied); it may throw to simulate a fault.
 */
export class RecordingEnforcer implements Enforcer {
  readonly decisions: RecordedDecision[] = [];
  readonly commands: RecordedCommand[] = [];
  readonly #commandResult: (tenantId: string, command: Command) => CommandResult | Promise<CommandResult>;

  constructor(commandResult?: (tenantId: string, command: Command) => CommandResult | Promise<CommandResult>) {
    this.#commandResult = commandResult ?? (() => ({ status: 'applied' }));
  }

  applyDecision(tenantId: string | null, decision: Decision): void {
    this.decisions.push({ tenantId, decision });
  }

  async applyCommand(tenantId: string, command: Command): Promise<CommandResult> {
    this.commands.push({ tenantId, command });
    return this.#commandResult(tenantId, command);
  }

  /** Devices currently denied at least once (by any decision), per tenant. */
  deniedDevices(tenantId: string): Set<string> {
    const out = new Set<string>();
    for (const r of this.decisions) if (r.tenantId === tenantId && r.decision.effect === 'deny') out.add(r.decision.device_id);
    return out;
  }
}
