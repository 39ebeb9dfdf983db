/**
 * For the revocation-in-flight audits (REST and MQTT carrier feeds): a tower feed held inside the
 * store right after one record was applied, so a revocation can be made at a known point of it.
 */
import type { SqliteStore } from '../../shared/store/sqlite/sqlite-store.js';

/** Holds `store`'s tower feed right after the record for `towerId` was applied, until released. */
export function holdTowerFeedAfter(store: SqliteStore, towerId: string) {
  const repo = store.carrierFeeds;
  const apply = repo.applyTower.bind(repo);
  const appliedIds: string[] = [];
  let reached!: () => void;
  let release!: () => void;
  const held = new Promise<void>((resolve) => (reached = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  repo.applyTower = async (carrierId, record, now) => {
    const outcome = await apply(carrierId, record, now);
    appliedIds.push(record.tower_id);
    if (record.tower_id === towerId) {
      reached();
      await released;
    }
    return outcome;
  };
  return { appliedIds, held, release };
}

/** `n` tower upserts, ids `${prefix}0`…: a feed long enough to be cut in its middle. */
export const feedTowers = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => ({ op: 'upsert', tower_id: `${prefix}${i}`, name: `Tower ${i}` }));
