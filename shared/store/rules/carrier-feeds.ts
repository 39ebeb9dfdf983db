/**
 * What a carrier feed record does to a tower, decided the same way by every adapter. Pure: the
 * adapter reads the tower, its links and the carriers the record names, asks `planTowerRecord`,
 * and writes what the plan says in one transaction (or nothing, for a refusal or 'unchanged').
 *
 * Ownership: a carrier writes only towers it manages. A tower a carrier's feed creates is managed
 * by that carrier; towers registered by operators (managed_by null) or managed by another carrier
 * are refused, so no carrier can move, rename, retire or re-link another party's tower.
 */
import type { Tower } from '../../domain.js';
import type { TowerFeedRecord } from '../../mqtt/carrier-payloads.js';

export interface TowerFields {
  name: string;
  lat: number | null;
  lon: number | null;
  radius_m: number | null;
  polygon: Array<[number, number]> | null;
}

export type TowerPlan =
  | { kind: 'refuse'; reason: string }
  | { kind: 'unchanged' }
  | { kind: 'create'; fields: TowerFields; links: string[] }
  | { kind: 'update'; fields: TowerFields; links: string[] | null; unretire: boolean }
  | { kind: 'retire' };

export interface TowerState {
  tower: Tower | null;
  polygon: Array<[number, number]> | null;
  links: string[];
  /** Which of the record's carrier ids exist. */
  knownCarriers: ReadonlySet<string>;
}

/** One message for "not yours" and "someone else's": a carrier learns no more than it must. */
export const NOT_MANAGED = 'tower_id: the tower exists and is not managed by this carrier';

export function planTowerRecord(carrierId: string, record: TowerFeedRecord, state: TowerState): TowerPlan {
  const { tower } = state;
  if (tower && tower.managed_by !== carrierId) return { kind: 'refuse', reason: NOT_MANAGED };
  if (record.op === 'retire') {
    if (!tower) return { kind: 'refuse', reason: 'tower_id: no such tower' };
    return tower.retired_at === null ? { kind: 'retire' } : { kind: 'unchanged' };
  }
  const wanted = record.carriers === undefined ? null : [...new Set(record.carriers)].sort();
  const unknown = wanted?.find((id) => !state.knownCarriers.has(id));
  if (unknown !== undefined) return { kind: 'refuse', reason: `carriers: no such carrier: ${unknown}` };

  const coverage = record.coverage;
  const fields: TowerFields = {
    name: record.name,
    lat: record.lat ?? tower?.lat ?? null,
    lon: record.lon ?? tower?.lon ?? null,
    radius_m: coverage === undefined ? (tower?.radius_m ?? null) : coverage !== null && 'radius_m' in coverage ? coverage.radius_m : null,
    polygon: coverage === undefined ? state.polygon : coverage !== null && 'polygon' in coverage ? coverage.polygon : null,
  };
  if (!tower) return { kind: 'create', fields, links: wanted ?? [carrierId] };

  const linksChange = wanted !== null && !sameList(wanted, [...state.links].sort());
  const fieldsChange =
    fields.name !== tower.name ||
    fields.lat !== tower.lat ||
    fields.lon !== tower.lon ||
    fields.radius_m !== tower.radius_m ||
    JSON.stringify(fields.polygon) !== JSON.stringify(state.polygon);
  const unretire = tower.retired_at !== null;
  if (!linksChange && !fieldsChange && !unretire) return { kind: 'unchanged' };
  return { kind: 'update', fields, links: linksChange ? wanted : null, unretire };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Device metadata fields a record sets; undefined keeps what the carrier said before. */
export function mergeDeviceMetadata<T extends Record<string, unknown>>(before: T | null, record: Partial<T>, keys: ReadonlyArray<keyof T>): { after: T; changed: boolean } {
  const after = { ...(before ?? {}) } as T;
  let changed = before === null;
  for (const k of keys) {
    const v = record[k];
    if (v === undefined) {
      if (before === null) (after as Record<keyof T, unknown>)[k] = null;
      continue;
    }
    if (before === null || before[k] !== v) changed = true;
    (after as Record<keyof T, unknown>)[k] = v;
  }
  return { after, changed };
}
