/**
 * Accounting sessions at a tower (topic `sessions`: the RADIUS plugin, or a tower reporting its
 * own): each record goes to the tenant that holds its device, folded into that device's session
 * and the tenant's totals, stored once per (tower, record key) so retransmissions count once.
 * Records of devices no tenant holds are not anyone's data: the devices become discovered
 * devices of the platform (as on the discovery topic) and the records are counted and dropped.
 */
import { decodePayload } from '../shared/mqtt/payloads.js';
import { SessionBatchSchema, type AccountingRecord } from '../shared/mqtt/session-payloads.js';
import type { UplinkMessage } from '../shared/mqtt/transport.js';
import type { DiscoveryReport } from '../shared/store/port.js';
import { dropUplink, type WorkerContext } from './context.js';

/**
 * The `source` label of the accounting counters. A batch names its own source, and a tower may
 * publish sessions itself with any name the schema allows: only the ingest plugins' names
 * (cli/roots/ingest-plugins.ts) become label values, the rest is `other`, so a tower cannot add
 * one series per name it invents. A new plugin that sends sessions adds its name here.
 */
const SESSION_SOURCE_LABELS: ReadonlySet<string> = new Set(['radius', 'line']);
const sessionSourceLabel = (source: string): string => (SESSION_SOURCE_LABELS.has(source) ? source : 'other');

export function createSessionProcessor(ctx: WorkerContext, tenantOfDevice: (deviceId: string) => string | undefined) {
  return async function processSessions(msg: UplinkMessage): Promise<void> {
    const decoded = decodePayload(SessionBatchSchema, msg.payload);
    if (!decoded.ok) return dropUplink(ctx, msg, 'invalid_payload', decoded.error);
    const batch = decoded.value;
    const labels = { source: sessionSourceLabel(batch.source) };
    const now = ctx.now();
    if (batch.tower_reset) {
      // Before the records: a batch carrying both reports the restart first.
      const cause = batch.tower_reset.reason === 'accounting-on' ? 'NAS-Reboot' : 'NAS-Request';
      const stopped = await ctx.store.deviceSessions.stopActiveAtTower(msg.tower_id, batch.tower_reset.at, cause, batch.tower_reset.nas);
      if (stopped) ctx.counters.inc('device_sessions_reset_total', labels, stopped);
    }
    const byTenant = new Map<string, AccountingRecord[]>();
    const unmapped = new Map<string, DiscoveryReport>();
    for (const r of batch.records) {
      const tenantId = tenantOfDevice(r.device_id) ?? (await ctx.store.devices.tenantOf(r.device_id)) ?? undefined;
      if (tenantId === undefined) {
        const seen = unmapped.get(r.device_id);
        if (seen) {
          seen.first_seen = Math.min(seen.first_seen, r.ts);
          seen.last_seen = Math.max(seen.last_seen, r.ts);
          seen.count++;
        } else unmapped.set(r.device_id, { device_id: r.device_id, first_seen: r.ts, last_seen: r.ts, count: 1 });
        continue;
      }
      let list = byTenant.get(tenantId);
      if (!list) byTenant.set(tenantId, (list = []));
      list.push(r);
    }
    const c = ctx.counters;
    for (const [tenantId, records] of byTenant) {
      const res = await ctx.store.deviceSessions.record({ tenant_id: tenantId, tower_id: msg.tower_id, records, now });
      if (res.inserted) c.inc('accounting_records_stored_total', labels, res.inserted);
      if (res.duplicates) c.inc('accounting_records_duplicate_total', labels, res.duplicates);
    }
    if (unmapped.size > 0) {
      const reports = [...unmapped.values()];
      await ctx.store.discovered.recordReports(msg.tower_id, batch.id, reports, now);
      c.inc('accounting_records_unmapped_total', labels, reports.reduce((n, r) => n + r.count, 0));
    }
  };
}
