/**
 * Discovered-device folding: one row per device and scope (a tenant, or the platform for devices
 * no tenant claims), keeping the earliest first_seen, the latest last_seen with the tower it was
 * seen at, and the total count.
 */
import type { DiscoveredDevice } from '../../domain.js';
import type { DiscoveryReport } from '../port.js';

export interface Sighting {
  tower_id: string;
  first_seen: number;
  last_seen: number;
  count: number;
}

export type DeviceSighting = Sighting & { device_id: string };

export interface Tracked<T> {
  row: T;
  /** True when the row does not exist yet (insert), false for an update. */
  isNew: boolean;
}

/** On a tie of last_seen the later sighting wins the tower: it is the newer report. */
export function foldSighting(row: DiscoveredDevice, sighting: Sighting): DiscoveredDevice {
  return {
    ...row,
    first_seen: Math.min(row.first_seen, sighting.first_seen),
    last_seen: Math.max(row.last_seen, sighting.last_seen),
    count: row.count + sighting.count,
    tower_id: sighting.last_seen >= row.last_seen ? sighting.tower_id : row.tower_id,
  };
}

export function reportSightings(towerId: string, reports: readonly DiscoveryReport[]): DeviceSighting[] {
  return reports.map((r) => ({
    device_id: r.device_id,
    tower_id: towerId,
    first_seen: r.first_seen,
    last_seen: r.last_seen,
    count: r.count,
  }));
}

/**
 * Folds sightings in order into the scope's rows. `existing` is keyed by device id and holds the
 * stored rows of this scope the adapter read; a device seen twice is folded twice.
 */
export function foldDiscovered(
  tenantId: string | null,
  sightings: readonly DeviceSighting[],
  existing: ReadonlyMap<string, DiscoveredDevice>,
  newId: () => string,
): Array<Tracked<DiscoveredDevice>> {
  const touched = new Map<string, Tracked<DiscoveredDevice>>();
  for (const { device_id, ...sighting } of sightings) {
    const seen = touched.get(device_id);
    if (seen) {
      seen.row = foldSighting(seen.row, sighting);
      continue;
    }
    const stored = existing.get(device_id);
    touched.set(
      device_id,
      stored
        ? { row: foldSighting(stored, sighting), isNew: false }
        : { row: { id: newId(), tenant_id: tenantId, device_id, ...sighting }, isNew: true },
    );
  }
  return [...touched.values()];
}

/** The distinct devices whose stored row must be read before folding. */
export function sightedDevices(sightings: readonly DeviceSighting[]): string[] {
  return [...new Set(sightings.map((s) => s.device_id))];
}
