/**
 * Command acknowledgements from towers: applied or failed (with the agent's reason). Moves the
 * command along its lifecycle; an ack for an unknown command, another tenant's command, or one
 * already final (e.g. expired) changes nothing and is counted.
 */
import { CommandAckSchema, decodePayload } from '../shared/mqtt/payloads.js';
import type { UplinkMessage } from '../shared/mqtt/transport.js';
import { dropUplink, type WorkerContext } from './context.js';

export function createAckProcessor(ctx: WorkerContext) {
  return async function processAck(msg: UplinkMessage, tenantId: string): Promise<void> {
    const decoded = decodePayload(CommandAckSchema, msg.payload);
    if (!decoded.ok) return dropUplink(ctx, msg, 'invalid_payload', decoded.error);
    const ack = decoded.value;
    const existing = await ctx.store.commands.get(tenantId, ack.command_id);
    // A tower may only acknowledge commands sent to it.
    if (!existing || existing.tower_id !== msg.tower_id) {
      ctx.counters.inc('command_acks_total', { tower: msg.tower_id, status: 'unknown_command' });
      return;
    }
    const r = await ctx.store.commands.transition(tenantId, ack.command_id, ack.status, ctx.now(), ack.reason ?? null);
    ctx.counters.inc('command_acks_total', { tower: msg.tower_id, status: r?.changed ? ack.status : 'ignored' });
    if (r?.changed) ctx.bus.publish('command.updated', { tenant_id: tenantId, command: r.command });
  };
}
