/**
 * Tower availability: retained status messages (and the broker-published last will). Runs once
 * per status message in the cluster, so it is also where a returning tower's commands are resent.
 */
import { decodePayload, TowerStatusSchema } from '../shared/mqtt/payloads.js';
import { shownPlainText } from '../shared/schemas/names.js';
import type { UplinkMessage } from '../shared/mqtt/transport.js';
import { dropUplink, type WorkerContext } from './context.js';

export function createStatusProcessor(ctx: WorkerContext) {
  return async function processStatus(msg: UplinkMessage): Promise<void> {
    const decoded = decodePayload(TowerStatusSchema, msg.payload);
    if (!decoded.ok) return dropUplink(ctx, msg, 'invalid_payload', decoded.error);
    const s = decoded.value;
    const known = await ctx.store.towers.setStatus(msg.tower_id, {
      state: s.state,
      // What the tower says, made safe to show (no controls, no bidi overrides).
      agent_version: s.agent_version === undefined ? null : shownPlainText(s.agent_version),
      // When the broker received it: messages of one tower may be processed out of order (other
      // jobs, other workers), and the store keeps the latest by this time.
      at: msg.received_at,
    });
    if (!known) return dropUplink(ctx, msg, 'unknown_tower');
    ctx.counters.inc('tower_status_total', { state: s.state });
    const tower = await ctx.store.towers.get(msg.tower_id);
    if (tower) ctx.bus.publish('tower.status', { tower });
    // Commands that waited for this tower go out now, not at their next backoff.
    if (s.state === 'online') await ctx.commands.towerOnline(msg.tower_id);
  };
}
