/**
 * Command acknowledgements from towers. The command lifecycle store (pending → delivered → acked)
 * arrives with auto-remediation; until then acks are validated and counted by status, so a
 * misbehaving agent is visible in metrics.
 */
import { CommandAckSchema, decodePayload } from '../shared/mqtt/payloads.js';
import type { UplinkMessage } from '../shared/mqtt/transport.js';
import { dropUplink, type WorkerContext } from './context.js';

export function createAckProcessor(ctx: WorkerContext) {
  return async function processAck(msg: UplinkMessage): Promise<void> {
    const decoded = decodePayload(CommandAckSchema, msg.payload);
    if (!decoded.ok) return dropUplink(ctx, msg, 'invalid_payload', decoded.error);
    ctx.counters.inc('command_acks_total', { tower: msg.tower_id, status: decoded.value.status });
  };
}
