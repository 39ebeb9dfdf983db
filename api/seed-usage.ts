/**
 * Test fixture: writes decided usage through the store port the way the ingest pipeline does,
 * so usage, alert and discovery routes have real rows to read. Not a test file itself.
 */
import { createIdFactory } from '../shared/ids.js';
import type { DecidedUsage, RecordUsageResult, Store } from '../shared/store/port.js';

const newId = createIdFactory();

export interface SeedEvent {
  device_id: string;
  user_id?: string | null;
  app: string;
  action: string;
  effect: 'allow' | 'deny';
  reason?: DecidedUsage['reason'];
  rule_id?: string | null;
  policy_id?: string | null;
}

export async function seedUsage(
  store: Store,
  tenantId: string,
  towerId: string,
  events: SeedEvent[],
  now = Date.now(),
): Promise<RecordUsageResult> {
  const batchId = newId();
  const records: DecidedUsage[] = events.map((e) => ({
    id: newId(),
    tenant_id: tenantId,
    tower_id: towerId,
    batch_id: batchId,
    device_id: e.device_id,
    user_id: e.user_id ?? null,
    app: e.app,
    action: e.action,
    bytes: null,
    ts: now,
    received_at: now,
    effect: e.effect,
    reason: e.reason ?? (e.rule_id ? 'rule' : 'default'),
    rule_id: e.rule_id ?? null,
    policy_id: e.policy_id ?? null,
    policy_version: 1,
    severity: e.effect === 'deny' && e.rule_id ? 'high' : null,
  }));
  return store.usage.recordBatch({
    tenant_id: tenantId,
    tower_id: towerId,
    batch_id: batchId,
    now,
    alert_window_s: 300,
    records,
  });
}
