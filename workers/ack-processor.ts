/**
 * Command acknowledgements from towers: applied or failed (with the agent's reason), handed to
 * the command service, which owns the lifecycle. An ack for an unknown command, another tenant's
 * or another tower's command, or one already final (e.g. expired) changes nothing and is counted.
 */
import { CommandAckSchema, decodePayload } from '../shared/mqtt/payloads.js';
import type { UplinkMessage } from '../shared/mqtt/transport.js';
import { dropUplink, type WorkerContext } from './context.js';

export function createAckProcessor(ctx: WorkerContext) {
  return async function processAck(msg: UplinkMessage, tenantId: string): Promise<void> {
    const decoded = decodePayload(CommandAckSchema, msg.payload);
    if (!decoded.ok) return dropUplink(ctx, msg, 'invalid_payload', decoded.error);
    const outcome = await ctx.commands.acknowledge(tenantId, msg.tower_id, decoded.value);
    ctx.counters.inc('command_acks_total', { tower: msg.tower_id, status: outcome });
  };
}
