/**
 * Command acknowledgements from towers: applied or failed (with the agent's reason), handed to
 * the command service, which owns the lifecycle. An ack for an unknown command, another tenant's
 * or another tower's command, or one already final (e.g. expired) changes nothing and is counted.
 */
import { CommandAckSchema, decodePayload } from '../shared/mqtt/payloads.js';
import { shownPlainText } from '../shared/schemas/names.js';
import type { UplinkMessage } from '../shared/mqtt/transport.js';
import { dropUplink, type WorkerContext } from './context.js';

export function createAckProcessor(ctx: WorkerContext) {
  return async function processAck(msg: UplinkMessage, tenantId: string): Promise<void> {
    const decoded = decodePayload(CommandAckSchema, msg.payload);
    if (!decoded.ok) return dropUplink(ctx, msg, 'invalid_payload', decoded.error);
    const ack = decoded.value;
    // The agent's reason is shown in the console and exports: made safe to show (no controls, no bidi overrides).
    const reason = ack.reason === undefined ? {} : { reason: shownPlainText(ack.reason) };
    const outcome = await ctx.commands.acknowledge(tenantId, msg.tower_id, { ...ack, ...reason });
    ctx.counters.inc('command_acks_total', { tower: msg.tower_id, status: outcome });
  };
}
