/**
 * Fills a stopped control plane's SQLite store with recorded usage, fast: straight through the
 * store port's group commit (recordBatches, as the ingest pipeline writes), each event decided by
 * the tenant's live compiled policy — so denies carry their rule and raise alerts as in
 * production. Events spread evenly over the `days` before `until`, over the tenant's devices and
 * the given towers; `violationEvery`-th events are the bench world's violation.
 */
import { join } from 'node:path';
import { createIdFactory } from '../../shared/ids.js';
import { compilePolicyIndex } from '../../shared/policy/compile-policy-index.js';
import { evaluateUsage } from '../../shared/policy/evaluate-usage.js';
import { modelFromSnapshot } from '../../shared/policy/model.js';
import type { DecidedUsage, RecordUsageInput } from '../../shared/store/port.js';
import { decidedUsage } from '../../shared/store/rules/usage-batch.js';
import { SqliteStore } from '../../shared/store/sqlite/sqlite-store.js';
import { mulberry32 } from '../../simulator/prng.js';
import { VIOLATION } from './bench-world.js';

const MIX = [
  { app: 'slack', action: 'send_message' },
  { app: 'slack', action: 'open' },
  { app: 'github', action: 'download_file' },
  { app: 'dropbox', action: 'download_file' },
];
const DAY_MS = 86_400_000;

export interface SeedOptions {
  dataDir: string;
  tenantId: string;
  deviceIds: string[];
  towerIds: string[];
  rows: number;
  days: number;
  until: number;
  violationEvery: number;
}

/** Returns the seconds it took. */
export async function seedUsageRows(opts: SeedOptions): Promise<number> {
  const t0 = performance.now();
  const store = new SqliteStore({ file: join(opts.dataDir, 'edgeplane.db') });
  await store.init();
  try {
    const snapshot = await store.policySnapshot(opts.tenantId);
    if (!snapshot) throw new Error(`tenant ${opts.tenantId} not in the store`);
    const index = compilePolicyIndex(modelFromSnapshot(snapshot));
    const newId = createIdFactory();
    const rnd = mulberry32(11);
    const since = opts.until - opts.days * DAY_MS;
    const BATCH = 1000;
    const GROUP = 20;
    let group: RecordUsageInput[] = [];
    for (let i = 0; i < opts.rows; i += BATCH) {
      const batchId = newId();
      const towerId = opts.towerIds[(i / BATCH) % opts.towerIds.length]!;
      const records: DecidedUsage[] = [];
      for (let j = i; j < Math.min(opts.rows, i + BATCH); j++) {
        const at = since + Math.floor((j / opts.rows) * opts.days * DAY_MS);
        const m = j % opts.violationEvery === opts.violationEvery - 1 ? VIOLATION : MIX[Math.floor(rnd() * MIX.length)]!;
        const e = { id: newId(), ts: at, device_id: opts.deviceIds[Math.floor(rnd() * opts.deviceIds.length)]!, app: m.app, action: m.action };
        const r = evaluateUsage(index, e, () => undefined);
        if (r.kind !== 'decided') throw new Error(`seed event not decided: ${r.kind}`);
        records.push(decidedUsage(e, r, index.version, { tenant_id: opts.tenantId, tower_id: towerId, batch_id: batchId, received_at: at }));
      }
      const last = records[records.length - 1]!;
      group.push({ tenant_id: opts.tenantId, tower_id: towerId, batch_id: batchId, now: last.received_at, alert_window_s: 300, records });
      if (group.length === GROUP) {
        await store.usage.recordBatches(group);
        group = [];
      }
    }
    if (group.length > 0) await store.usage.recordBatches(group);
  } finally {
    await store.close();
  }
  return (performance.now() - t0) / 1000;
}
