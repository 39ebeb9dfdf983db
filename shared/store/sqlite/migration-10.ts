/**
 * Migration 10: usage loses its (tenant, tower, ts) index (issue #10).
 *
 * Why: migration 9 kept it on the reasoning that towers are few, so inserts append to a handful
 * of pages. Measured on the WAL of a running control plane (bench b, 20 towers, 10,000 events/s,
 * ~4 batches per group commit): each commit wrote 16 pages, 7.8 of them this index's — every
 * tower's newest entries are their own page, so a commit dirties one page per tower it carries
 * and more on splits — and each page is two pwrite(2) calls in the WAL. Without it, in alternating
 * runs: p99 at 10,000 events/s 22.6–24.8 → 7.5–15.2 ms, p50 at 20,000 2.6–2.7 → 1.9 ms. A tower
 * filter now reads newest-first within a budget per page, like the device and user filters
 * (usage-repo.ts `boundedScan`); a tower is a small share of a tenant's traffic, as a device is.
 */
import type { Migration } from './migrations.js';

export const MIGRATION_10: Migration = {
  version: 10,
  name: 'usage without the per-tower index',
  sql: `
DROP INDEX IF EXISTS usage_tower_ts;
`,
};
