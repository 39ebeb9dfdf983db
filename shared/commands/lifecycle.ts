/**
 * The command lifecycle (DESIGN §4) as data: statuses, the forward-only transition table, which
 * statuses are final. The CommandService is the one module that moves commands; store adapters
 * use `canMove` to guard each move inside their transaction.
 *
 *   pending → delivered (the tower's MQTT client PUBACKed it) → applied | failed (the agent's ack)
 *   pending | delivered → expired (not acknowledged by expires_at)
 *
 * An ack may overtake the delivery notice (they travel separately), so pending may go straight
 * to applied/failed; a final status never moves again.
 */
import type { CommandStatus } from '../domain.js';

export const COMMAND_TRANSITIONS: Readonly<Record<CommandStatus, readonly CommandStatus[]>> = {
  pending: ['delivered', 'applied', 'failed', 'expired'],
  delivered: ['applied', 'failed', 'expired'],
  applied: [],
  failed: [],
  expired: [],
};

export const FINAL_COMMAND_STATUSES: ReadonlySet<CommandStatus> = new Set(['applied', 'failed', 'expired']);

export function canMove(from: CommandStatus, to: CommandStatus): boolean {
  return COMMAND_TRANSITIONS[from].includes(to);
}

export function isFinal(status: CommandStatus): boolean {
  return FINAL_COMMAND_STATUSES.has(status);
}
