/**
 * MEMORY TEST — the export streams. Its printed figure (peak RSS growth and duration for a
 * 1,000,000-row CSV export) goes in the release notes.
 *
 * 1,000,000 usage rows are written straight through the store's group commit (50,000 rows per
 * transaction) into a real SQLite file, then `GET /app-usage?format=csv` is read over a real
 * HTTP listener on 127.0.0.1 with fetch, chunk by chunk, while RSS is sampled. The bound (200 MiB
 * above the RSS before the export) is generous for a streamed export, which holds about one page
 * of 1000 rows at a time; an export that built the rows in memory first would hold ~1M row
 * objects (~0.5 KB each) plus a ~190 MB string, and exceed it. The duration is printed, not
 * asserted (speed belongs to `npm run bench`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import type { DecidedUsage, RecordUsageInput } from '../shared/store/port.js';
import { OPERATOR_EMAIL, createTenant, login, startHarness, type Harness, type Session } from './test-support.js';

const ROWS = 1_000_000;
const ROWS_PER_BATCH = 10_000;
const BATCHES_PER_TRANSACTION = 5;
const MAX_RSS_GROWTH_BYTES = 200 * 1024 * 1024;
const MiB = 1024 * 1024;

let h: Harness;
let owner: Session;
let tenantId: string;

beforeAll(async () => {
  h = await startHarness({ rateLimitPerMin: 100_000 });
  const operator = await login(h.app, OPERATOR_EMAIL);
  ({ owner, tenantId } = await createTenant(h.app, operator, 'Bulk'));
}, 60_000);
afterAll(async () => {
  await h?.close();
});

/** Writes ROWS usage rows through the store's fast path (recordBatches: one transaction per call). */
async function insertRows(): Promise<void> {
  const newId = createIdFactory();
  const now = h.clock.now;
  let written = 0;
  while (written < ROWS) {
    const inputs: RecordUsageInput[] = [];
    for (let b = 0; b < BATCHES_PER_TRANSACTION && written < ROWS; b++) {
      const batchId = newId();
      const n = Math.min(ROWS_PER_BATCH, ROWS - written);
      const records: DecidedUsage[] = new Array<DecidedUsage>(n);
      for (let i = 0; i < n; i++) {
        const k = written + i;
        records[i] = {
          id: newId(),
          tenant_id: tenantId,
          tower_id: `twr-${k % 50}`,
          batch_id: batchId,
          device_id: `dev-${k % 5000}`,
          user_id: k % 3 === 0 ? null : `user-${k % 1000}`,
          app: 'slack',
          action: 'upload_file',
          bytes: k % 100_000,
          ts: now - k,
          received_at: now,
          effect: 'allow',
          reason: 'default',
          rule_id: null,
          policy_id: null,
          policy_version: 1,
          severity: null,
        };
      }
      inputs.push({ tenant_id: tenantId, tower_id: 'twr-0', batch_id: batchId, now, alert_window_s: 300, records });
      written += n;
    }
    await h.store.usage.recordBatches(inputs);
  }
}

describe('export memory (release-notes figure)', () => {
  it(
    `streams ${ROWS.toLocaleString('en-US')} rows as CSV over HTTP with bounded memory`,
    async () => {
      const insertStarted = performance.now();
      await insertRows();
      const insertMs = performance.now() - insertStarted;

      const url = await h.app.listen({ host: '127.0.0.1', port: 0 });
      // Let the insert's garbage go before taking the baseline, where the runtime allows it.
      (globalThis as { gc?: () => void }).gc?.();
      const baseline = process.memoryUsage.rss();
      let peak = baseline;
      const sample = () => {
        const rss = process.memoryUsage.rss();
        if (rss > peak) peak = rss;
      };
      const sampler = setInterval(sample, 25);

      const started = performance.now();
      let lines = 0;
      let bytes = 0;
      try {
        const res = await fetch(`${url}/api/v1/app-usage?format=csv`, { headers: owner.headers });
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
        const reader = res.body!.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          bytes += value.byteLength;
          for (let at = value.indexOf(10); at !== -1; at = value.indexOf(10, at + 1)) lines++;
          sample();
        }
      } finally {
        clearInterval(sampler);
      }
      const durationMs = performance.now() - started;
      const growth = peak - baseline;

      console.log(
        `export memory: ${ROWS.toLocaleString('en-US')} rows CSV (${(bytes / MiB).toFixed(0)} MiB) streamed over HTTP in ` +
          `${(durationMs / 1000).toFixed(1)} s; peak RSS growth ${(growth / MiB).toFixed(1)} MiB ` +
          `(baseline ${(baseline / MiB).toFixed(0)} MiB, peak ${(peak / MiB).toFixed(0)} MiB); insert ${(insertMs / 1000).toFixed(1)} s`,
      );
      // Header row + one line per row.
      expect(lines).toBe(ROWS + 1);
      expect(growth).toBeLessThan(MAX_RSS_GROWTH_BYTES);
    },
    120_000,
  );
});
