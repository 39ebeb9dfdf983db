/** Devices a tower saw but could not map to any tenant: recorded platform-wide for operators. */
import { decodePayload, DiscoveryBatchSchema } from '../shared/mqtt/payloads.js';
import type { UplinkMessage } from '../shared/mqtt/transport.js';
import { dropUplink, type WorkerContext } from './context.js';

export function createDiscoveryProcessor(ctx: WorkerContext) {
  return async function processDiscovery(msg: UplinkMessage): Promise<void> {
    const decoded = decodePayload(DiscoveryBatchSchema, msg.payload);
    if (!decoded.ok) return dropUplink(ctx, msg, 'invalid_payload', decoded.error);
    const batch = decoded.value;
    const fresh = await ctx.store.discovered.recordReports(msg.tower_id, batch.id, batch.devices, ctx.now());
    ctx.counters.inc(fresh ? 'discovery_reports_total' : 'discovery_reports_duplicate_total', undefined, batch.devices.length);
  };
}
