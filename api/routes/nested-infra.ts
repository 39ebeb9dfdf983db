/**
 * Nested reads about the platform's infrastructure: a tower's devices and coverage, a carrier's
 * towers, coverage and performance. Towers follow the same visibility rule as `/towers`: tenant
 * users see only towers where their devices were seen, and nothing about the others (a carrier's
 * tower lists leave them out; a tower id they cannot see is 404).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Tower } from '../../shared/domain.js';
import type { Store } from '../../shared/store/port.js';
import { principalOf, tenantIdOf } from '../auth/guard.js';
import { EpochMsSchema, IdParams, NextCursor, errorResponses, found } from '../schemas/common.js';
import { CarrierSchema, TowerSchema } from '../../shared/schemas/records.js';
import type { Principal } from '../types.js';
import { visibleTower } from './towers.js';

/** Usage rows read per `/towers/{id}/devices` request (newest first); the rest via next_cursor. */
export const TOWER_DEVICES_SCAN_ROWS = 5000;
const PAGE = 1000;

const DeviceAtTowerSchema = z.object({
  device_id: z.string(),
  user_id: z.string().nullable().describe('owner at the time of the newest event'),
  registered: z.boolean().describe('false when the newest event was from an unregistered device'),
  last_seen: EpochMsSchema.describe('newest event of the device at this tower'),
});
type DeviceAtTower = z.output<typeof DeviceAtTowerSchema>;

const TowerDevicesQuery = z.object({
  cursor: z.string().min(1).max(512).optional().describe('next_cursor of the previous answer: continue with older usage'),
});

const CoverageTowerSchema = z.object({
  tower_id: z.string(),
  name: z.string(),
  lat: z.number(),
  lon: z.number(),
  radius_m: z.number().nullable().describe('coverage radius in metres; null when not recorded'),
});

const TowerPerformanceSchema = z.object({
  tower_id: z.string(),
  name: z.string(),
  state: TowerSchema.shape.state,
  agent_version: z.string().nullable(),
  last_seen: EpochMsSchema.nullable().describe('last status message of the tower'),
});

/** Ids of the towers a principal may see; null when it may see them all (operators). */
async function visibleTowerIds(store: Store, principal: Principal): Promise<Set<string> | null> {
  if (principal.tenantId === null) return null;
  const ids = new Set<string>();
  let cursor: string | null = null;
  do {
    const page = await store.towers.listSeenByTenant(principal.tenantId, { limit: PAGE, cursor });
    for (const t of page.items) ids.add(t.id);
    cursor = page.next_cursor;
  } while (cursor !== null);
  return ids;
}

/** The carrier's towers the principal may see (404 for an unknown carrier). */
async function carrierTowers(store: Store, principal: Principal, carrierId: string): Promise<{ carrierId: string; towers: Tower[] }> {
  const carrier = found(await store.carriers.get(carrierId), 'carrier');
  const [towers, visible] = await Promise.all([store.towerCarriers.towersOfCarrier(carrier.id), visibleTowerIds(store, principal)]);
  return { carrierId: carrier.id, towers: visible === null ? towers : towers.filter((t) => visible.has(t.id)) };
}

/**
 * Devices of the tenant seen at a tower, from its newest usage rows (at most
 * TOWER_DEVICES_SCAN_ROWS per call) and, on the first call, its unregistered devices discovered
 * there. A continued call covers older rows only, so a device can appear again there.
 */
async function devicesAtTower(
  store: Store,
  tenantId: string,
  towerId: string,
  cursor: string | undefined,
): Promise<{ devices: DeviceAtTower[]; next_cursor: string | null }> {
  const byDevice = new Map<string, DeviceAtTower>();
  let next: string | null = cursor ?? null;
  for (let scanned = 0; scanned < TOWER_DEVICES_SCAN_ROWS; scanned += PAGE) {
    const page = await store.usage.list(tenantId, { tower_id: towerId, limit: PAGE, cursor: next });
    for (const r of page.items) {
      // Newest first: the first row of a device is its latest state.
      if (byDevice.has(r.device_id)) continue;
      byDevice.set(r.device_id, {
        device_id: r.device_id,
        user_id: r.user_id,
        registered: r.reason !== 'unknown_device',
        last_seen: r.ts,
      });
    }
    next = page.next_cursor;
    if (next === null) break;
  }
  if (cursor === undefined) {
    let discoveredCursor: string | null = null;
    for (let scanned = 0; scanned < TOWER_DEVICES_SCAN_ROWS; scanned += PAGE) {
      const page = await store.discovered.list(tenantId, { limit: PAGE, cursor: discoveredCursor });
      for (const d of page.items) {
        if (d.tower_id !== towerId || byDevice.has(d.device_id)) continue;
        byDevice.set(d.device_id, { device_id: d.device_id, user_id: null, registered: false, last_seen: d.last_seen });
      }
      discoveredCursor = page.next_cursor;
      if (discoveredCursor === null) break;
    }
  }
  const devices = [...byDevice.values()].sort((a, b) => b.last_seen - a.last_seen || (a.device_id < b.device_id ? -1 : 1));
  return { devices, next_cursor: next };
}

export const nestedInfraRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/towers/:id/devices',
    {
      config: { permission: 'devices:read' },
      schema: {
        summary: "The caller's devices seen at a tower, most recent first",
        description:
          `Built from the tower's newest usage of the tenant (at most ${TOWER_DEVICES_SCAN_ROWS} events per call) and the ` +
          "tenant's unregistered devices discovered there. `next_cursor` continues with older usage; a device may then appear again.",
        params: IdParams,
        querystring: TowerDevicesQuery,
        response: {
          200: z.object({ tower_id: z.string(), devices: z.array(DeviceAtTowerSchema), next_cursor: NextCursor }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const tenantId = tenantIdOf(request);
      const tower = found(await visibleTower(app.store, principalOf(request), request.params.id), 'tower');
      return { tower_id: tower.id, ...(await devicesAtTower(app.store, tenantId, tower.id, request.query.cursor)) };
    },
  );

  app.get(
    '/towers/:id/coverage',
    {
      config: { permission: 'towers:read' },
      schema: {
        summary: 'Where a tower is, how far it reaches and which carriers run it',
        params: IdParams,
        response: {
          200: z.object({
            tower_id: z.string(),
            lat: z.number().nullable(),
            lon: z.number().nullable(),
            radius_m: z.number().nullable(),
            polygon: z.array(z.tuple([z.number(), z.number()])).nullable().describe('coverage area from its carrier feed, [lon, lat] points'),
            carriers: z.array(CarrierSchema),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const tower = found(await visibleTower(app.store, principalOf(request), request.params.id), 'tower');
      const [carriers, polygon] = await Promise.all([app.store.towerCarriers.carriersOfTower(tower.id), app.store.carrierFeeds.towerPolygon(tower.id)]);
      return { tower_id: tower.id, lat: tower.lat, lon: tower.lon, radius_m: tower.radius_m, polygon, carriers };
    },
  );

  app.get(
    '/carriers/:id/towers',
    {
      config: { permission: 'carriers:read' },
      schema: {
        summary: 'Towers a carrier runs (tenant users: those where their devices were seen)',
        params: IdParams,
        response: { 200: z.object({ carrier_id: z.string(), towers: z.array(TowerSchema) }), ...errorResponses },
      },
    },
    async (request) => {
      const { carrierId, towers } = await carrierTowers(app.store, principalOf(request), request.params.id);
      return { carrier_id: carrierId, towers };
    },
  );

  app.get(
    '/carriers/:id/coverage',
    {
      config: { permission: 'carriers:read' },
      schema: {
        summary: "A carrier's coverage: its located towers with their radius",
        description: 'Towers without a recorded location are left out.',
        params: IdParams,
        response: { 200: z.object({ carrier_id: z.string(), towers: z.array(CoverageTowerSchema) }), ...errorResponses },
      },
    },
    async (request) => {
      const { carrierId, towers } = await carrierTowers(app.store, principalOf(request), request.params.id);
      const located = towers.flatMap((t) =>
        t.lat !== null && t.lon !== null ? [{ tower_id: t.id, name: t.name, lat: t.lat, lon: t.lon, radius_m: t.radius_m }] : [],
      );
      return { carrier_id: carrierId, towers: located };
    },
  );

  app.get(
    '/carriers/:id/performance',
    {
      config: { permission: 'carriers:read' },
      schema: {
        summary: "A carrier's towers as they report themselves",
        description:
          "What the platform stores about a tower's health: its state from its status topic (online, offline after its " +
          'last will, unknown before any status), the edge agent version and the time of its last status. No traffic or ' +
          'latency figures are stored per carrier.',
        params: IdParams,
        response: {
          200: z.object({
            carrier_id: z.string(),
            summary: z.object({ towers: z.number().int(), online: z.number().int(), offline: z.number().int(), unknown: z.number().int() }),
            towers: z.array(TowerPerformanceSchema),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { carrierId, towers } = await carrierTowers(app.store, principalOf(request), request.params.id);
      const summary = { towers: towers.length, online: 0, offline: 0, unknown: 0 };
      for (const t of towers) summary[t.state] += 1;
      return {
        carrier_id: carrierId,
        summary,
        towers: towers.map((t) => ({ tower_id: t.id, name: t.name, state: t.state, agent_version: t.agent_version, last_seen: t.last_seen })),
      };
    },
  );
};
