/**
 * The command lifecycle rules (port: commands): how a new command looks and which moves apply.
 */
import type { CommandRecord, CommandStatus } from '../../domain.js';
import type { CommandInput } from '../port.js';
import { canMove, COMMAND_TRANSITIONS } from '../../commands/lifecycle.js';
import { notFound } from './errors.js';

/** The transition table is the command lifecycle's (shared/commands/lifecycle.ts). */
export const NEXT = COMMAND_TRANSITIONS;

/** Statuses still in flight (listOpen). */
export const OPEN_STATUSES: readonly CommandStatus[] = ['pending', 'delivered'];

/** The record after moving `before` to `status`, or null when the move is not a forward one. */
export function applyTransition(
  before: CommandRecord,
  status: CommandStatus,
  at: number,
  detail: string | null,
): CommandRecord | null {
  if (!canMove(before.status, status)) return null;
  const acked = status === 'applied' || status === 'failed';
  return {
    ...before,
    status,
    updated_at: at,
    delivered_at: status === 'delivered' ? at : before.delivered_at,
    acked_at: acked ? at : before.acked_at,
    ack_reason: acked ? detail : before.ack_reason,
  };
}

/**
 * A device registered to another tenant must never be acted on from this one. An unregistered
 * id is allowed: a tenant may act on a stranger seen at its towers. `owner` is the device's
 * tenant, or null when no tenant registered it.
 */
export function requireCommandDevice(tenantId: string, owner: string | null): void {
  if (owner !== null && owner !== tenantId) throw notFound('device_id', 'no such device');
}

/** `id` is the caller's chosen id (createIfAbsent) or a fresh one. */
export function newCommand(input: CommandInput, id: string, now: number): CommandRecord {
  return {
    id,
    tenant_id: input.tenant_id,
    tower_id: input.tower_id,
    device_id: input.device_id,
    type: input.type,
    app: input.app ?? null,
    duration_s: input.duration_s ?? null,
    reason: input.reason ?? null,
    source: input.source,
    rule_id: input.rule_id ?? null,
    issued_by: input.issued_by ?? null,
    status: 'pending',
    attempts: 0,
    created_at: now,
    updated_at: now,
    expires_at: input.expires_at,
    delivered_at: null,
    acked_at: null,
    ack_reason: null,
  };
}
