/**
 * Carrier principals and what their feeds write: credentials, towers they manage (with links and
 * coverage polygons), device metadata. One feed record = one transaction (rules/carrier-feeds.ts).
 */
import type { CarrierCredential, DeviceMetadata, Tower } from '../../domain.js';
import { mergeDeviceMetadata, planTowerRecord } from '../rules/carrier-feeds.js';
import type { CarrierCredentialRecord, Store } from '../port.js';
import type { SqliteContext, Stmt } from './context.js';
import { insertOrConflict, notFound } from './context.js';
import { fromJson, toJson } from './json-column.js';
import { TOWER_COLUMNS } from './platform-repos.js';

const CREDENTIAL_COLUMNS = 'id, carrier_id, created_at, revoked_at, last_used_at';

export function createCarrierCredentialRepo(ctx: SqliteContext): Store['carrierCredentials'] {
  const db = ctx.db;
  const carrierExists: Stmt<[string], { id: string }> = db.prepare('SELECT id FROM carriers WHERE id = ?');
  const insert: Stmt<[string, string, string, number]> = db.prepare(
    'INSERT INTO carrier_credentials (id, carrier_id, secret_hash, created_at) VALUES (?, ?, ?, ?)',
  );
  const get: Stmt<[string], CarrierCredentialRecord> = db.prepare(`SELECT ${CREDENTIAL_COLUMNS}, secret_hash FROM carrier_credentials WHERE id = ?`);
  const list: Stmt<[string], CarrierCredential> = db.prepare(`SELECT ${CREDENTIAL_COLUMNS} FROM carrier_credentials WHERE carrier_id = ? ORDER BY id`);
  const revoke: Stmt<[number, string]> = db.prepare('UPDATE carrier_credentials SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL');
  const touch: Stmt<[number, string]> = db.prepare('UPDATE carrier_credentials SET last_used_at = ? WHERE id = ?');
  return {
    async create(rec) {
      return ctx.write(() => {
        if (!carrierExists.get(rec.carrier_id)) throw notFound('carrier_id', 'no such carrier');
        const createdAt = ctx.now();
        insertOrConflict(() => insert.run(rec.id, rec.carrier_id, rec.secret_hash, createdAt), 'id', 'credential already exists');
        return { id: rec.id, carrier_id: rec.carrier_id, created_at: createdAt, revoked_at: null, last_used_at: null };
      });
    },
    async get(id) {
      return get.get(id) ?? null;
    },
    async listForCarrier(carrierId) {
      return list.all(carrierId);
    },
    async revoke(id, now) {
      return revoke.run(now, id).changes > 0;
    },
    async touch(id, now) {
      touch.run(now, id);
    },
  };
}

const METADATA_KEYS = ['os', 'os_version', 'model', 'device_type'] as const;
type MetadataFields = Pick<DeviceMetadata, (typeof METADATA_KEYS)[number]>;

export function createCarrierFeedRepo(ctx: SqliteContext): Store['carrierFeeds'] {
  const db = ctx.db;
  const towerCols = TOWER_COLUMNS.join(', ');
  const getTower: Stmt<[string], Tower> = db.prepare(`SELECT ${towerCols} FROM towers WHERE id = ?`);
  const getPolygon: Stmt<[string], { polygon: string }> = db.prepare('SELECT polygon FROM tower_polygons WHERE tower_id = ?');
  const setPolygon: Stmt<[string, string]> = db.prepare(
    'INSERT INTO tower_polygons (tower_id, polygon) VALUES (?, ?) ON CONFLICT (tower_id) DO UPDATE SET polygon = excluded.polygon',
  );
  const clearPolygon: Stmt<[string]> = db.prepare('DELETE FROM tower_polygons WHERE tower_id = ?');
  const linksOf: Stmt<[string], { carrier_id: string }> = db.prepare('SELECT carrier_id FROM tower_carriers WHERE tower_id = ?');
  const carrierExists: Stmt<[string], { id: string }> = db.prepare('SELECT id FROM carriers WHERE id = ?');
  const insertTower: Stmt<[Record<string, unknown>]> = db.prepare(
    `INSERT INTO towers (${towerCols}) VALUES (${TOWER_COLUMNS.map((c) => `@${c}`).join(', ')})`,
  );
  const updateTower: Stmt<[Record<string, unknown>]> = db.prepare(
    'UPDATE towers SET name = @name, lat = @lat, lon = @lon, radius_m = @radius_m, retired_at = NULL, updated_at = @now WHERE id = @id',
  );
  const retireTower: Stmt<[number, number, string]> = db.prepare('UPDATE towers SET retired_at = ?, updated_at = ? WHERE id = ?');
  const clearLinks: Stmt<[string]> = db.prepare('DELETE FROM tower_carriers WHERE tower_id = ?');
  const link: Stmt<[string, string, number]> = db.prepare('INSERT INTO tower_carriers (tower_id, carrier_id, created_at) VALUES (?, ?, ?)');
  const getMetadata: Stmt<[string, string], MetadataFields> = db.prepare(
    'SELECT os, os_version, model, device_type FROM device_metadata WHERE device_id = ? AND carrier_id = ?',
  );
  const putMetadata: Stmt<[Record<string, unknown>]> = db.prepare(
    `INSERT INTO device_metadata (device_id, carrier_id, os, os_version, model, device_type, updated_at)
     VALUES (@device_id, @carrier_id, @os, @os_version, @model, @device_type, @updated_at)
     ON CONFLICT (device_id, carrier_id) DO UPDATE SET os = excluded.os, os_version = excluded.os_version,
       model = excluded.model, device_type = excluded.device_type, updated_at = excluded.updated_at`,
  );

  return {
    async applyTower(carrierId, record, now) {
      return ctx.write(() => {
        if (!carrierExists.get(carrierId)) throw notFound('carrier_id', 'no such carrier');
        const tower = getTower.get(record.tower_id) ?? null;
        const polygonRow = getPolygon.get(record.tower_id);
        const named = record.op === 'upsert' ? (record.carriers ?? []) : [];
        const plan = planTowerRecord(carrierId, record, {
          tower,
          polygon: polygonRow ? fromJson<Array<[number, number]>>(polygonRow.polygon) : null,
          links: linksOf.all(record.tower_id).map((r) => r.carrier_id),
          knownCarriers: new Set(named.filter((id) => carrierExists.get(id))),
        });
        switch (plan.kind) {
          case 'refuse':
            return { outcome: 'refused', reason: plan.reason };
          case 'unchanged':
            return { outcome: 'unchanged' };
          case 'retire':
            retireTower.run(now, now, record.tower_id);
            return { outcome: 'retired' };
          case 'create':
          case 'update': {
            const f = plan.fields;
            if (plan.kind === 'create') {
              insertTower.run({
                id: record.tower_id, name: f.name, lat: f.lat, lon: f.lon, radius_m: f.radius_m, state: 'unknown',
                agent_version: null, last_seen: null, managed_by: carrierId, retired_at: null, created_at: now, updated_at: now,
              });
            } else {
              updateTower.run({ id: record.tower_id, name: f.name, lat: f.lat, lon: f.lon, radius_m: f.radius_m, now });
            }
            if (f.polygon) setPolygon.run(record.tower_id, toJson(f.polygon)!);
            else clearPolygon.run(record.tower_id);
            if (plan.links) {
              clearLinks.run(record.tower_id);
              for (const c of plan.links) link.run(record.tower_id, c, now);
            }
            return { outcome: plan.kind === 'create' ? 'created' : 'updated' };
          }
        }
      });
    },

    async applyDevice(carrierId, record, now) {
      return ctx.write(() => {
        if (!carrierExists.get(carrierId)) throw notFound('carrier_id', 'no such carrier');
        const before = getMetadata.get(record.device_id, carrierId) ?? null;
        const { after, changed } = mergeDeviceMetadata<MetadataFields>(before, record, METADATA_KEYS);
        if (!changed) return { outcome: 'unchanged' };
        putMetadata.run({ ...after, device_id: record.device_id, carrier_id: carrierId, updated_at: now });
        return { outcome: before ? 'updated' : 'created' };
      });
    },

    async towerPolygon(towerId) {
      const row = getPolygon.get(towerId);
      return row ? fromJson<Array<[number, number]>>(row.polygon) : null;
    },
  };
}

export function createDeviceMetadataRepo(ctx: SqliteContext): Store['deviceMetadata'] {
  return {
    async forDevices(deviceIds) {
      if (deviceIds.length === 0) return [];
      const unique = [...new Set(deviceIds)];
      const rows: DeviceMetadata[] = [];
      // Bounded IN lists (SQLite's default variable limit is 32766; pages are at most 1000 ids).
      for (let i = 0; i < unique.length; i += 500) {
        const chunk = unique.slice(i, i + 500);
        const sql = `SELECT device_id, carrier_id, os, os_version, model, device_type, updated_at FROM device_metadata
          WHERE device_id IN (${chunk.map(() => '?').join(', ')}) ORDER BY device_id, updated_at DESC, carrier_id`;
        rows.push(...ctx.rows<DeviceMetadata>(sql, chunk));
      }
      const newest = new Map<string, DeviceMetadata>();
      for (const r of rows) if (!newest.has(r.device_id)) newest.set(r.device_id, r);
      return [...newest.values()];
    },
  };
}
