/**
 * Carrier credentials and feeds, device metadata, RADIUS clients and device sessions: the same
 * rules as the SQLite adapter (rules/carrier-feeds.ts, rules/sessions.ts), one transaction per
 * feed record and per accounting batch.
 */
import type { CarrierCredential, DeviceMetadata, DeviceSession, RadiusClient, SessionTotals, Tower } from '../../domain.js';
import { mergeDeviceMetadata, planTowerRecord } from '../rules/carrier-feeds.js';
import { conflict, notFound } from '../rules/errors.js';
import { foldAccounting, stopByReset, type TotalsDelta } from '../rules/sessions.js';
import type { Store } from '../port.js';
import { C, type TowerCarrierDoc, type TowerDoc } from './collections.js';
import { insertOrConflict, strip, type MongoContext } from './context.js';
import { isDuplicateKeyError, type SessionLike } from './db-like.js';
import { compositeKey } from './keys.js';
import { toTower } from './platform-repos.js';

type CarrierCredentialDoc = CarrierCredential & { _id: string; secret_hash: string };
type PolygonDoc = { _id: string; polygon: Array<[number, number]> };
type MetadataDoc = DeviceMetadata & { _id: string };
// radsec_identity is absent from documents written before it existed.
type RadiusClientDoc = Omit<RadiusClient, 'radsec_identity'> & { _id: string; secret: string; radsec_identity?: string | null };
// nas: the RADIUS client that named the session; absent when none did (and before it was kept).
type SessionDoc = DeviceSession & { _id: string; tenant_tower_session: string; nas?: string };
type IdDoc = { _id: string };
type AccountingRecordDoc = { _id: string; tenant_id: string; processed_at: number };
type TotalsDoc = Omit<SessionTotals, 'key'> & { _id: string; tenant_id: string; dim: 'device' | 'tower'; key: string };

const toCredential = (d: CarrierCredentialDoc): CarrierCredential => strip(d, 'secret_hash');

async function requireCarrier(ctx: MongoContext, id: string, session?: SessionLike): Promise<void> {
  // A guard write: conflicts with the carrier's concurrent deletion (no foreign keys here).
  const res = await ctx.coll<IdDoc>(C.carriers).updateOne({ _id: id }, { $inc: { write_guard: 1 } }, { session });
  if (res.matchedCount === 0) throw notFound('carrier_id', 'no such carrier');
}

export function createCarrierCredentialRepo(ctx: MongoContext): Store['carrierCredentials'] {
  const coll = ctx.coll<CarrierCredentialDoc>(C.carrierCredentials);
  return {
    async create(rec) {
      return ctx.write(async ({ session }) => {
        await requireCarrier(ctx, rec.carrier_id, session);
        const doc: CarrierCredentialDoc = { _id: rec.id, id: rec.id, carrier_id: rec.carrier_id, secret_hash: rec.secret_hash, created_at: ctx.now(), revoked_at: null, last_used_at: null };
        await insertOrConflict(() => coll.insertOne(doc, { session }), () => conflict('id', 'credential already exists'));
        return toCredential(doc);
      });
    },
    async get(id) {
      const doc = await coll.findOne({ _id: id });
      return doc ? strip(doc) : null;
    },
    async listForCarrier(carrierId) {
      return (await coll.find({ carrier_id: carrierId }, { sort: { _id: 1 } }).toArray()).map(toCredential);
    },
    async revoke(id, now) {
      return (await coll.updateOne({ _id: id, revoked_at: null }, { $set: { revoked_at: now } })).modifiedCount > 0;
    },
    async touch(id, now) {
      await coll.updateOne({ _id: id }, { $set: { last_used_at: now } });
    },
  };
}

const METADATA_KEYS = ['os', 'os_version', 'model', 'device_type'] as const;
type MetadataFields = Pick<DeviceMetadata, (typeof METADATA_KEYS)[number]>;

export function createCarrierFeedRepo(ctx: MongoContext): Store['carrierFeeds'] {
  const towers = ctx.coll<TowerDoc>(C.towers);
  const polygons = ctx.coll<PolygonDoc>(C.towerPolygons);
  const links = ctx.coll<TowerCarrierDoc>(C.towerCarriers);
  const carriers = ctx.coll<IdDoc>(C.carriers);
  const metadata = ctx.coll<MetadataDoc>(C.deviceMetadata);
  return {
    async applyTower(carrierId, record, now) {
      return ctx.write(async ({ session }) => {
        await requireCarrier(ctx, carrierId, session);
        const doc = await towers.findOne({ _id: record.tower_id }, { session });
        const tower: Tower | null = doc ? toTower(doc) : null;
        const named = record.op === 'upsert' ? [...new Set(record.carriers ?? [])] : [];
        const known = named.length ? await carriers.find({ _id: { $in: named } }, { session }).toArray() : [];
        const plan = planTowerRecord(carrierId, record, {
          tower,
          polygon: (await polygons.findOne({ _id: record.tower_id }, { session }))?.polygon ?? null,
          links: (await links.find({ tower_id: record.tower_id }, { session }).toArray()).map((l) => l.carrier_id),
          knownCarriers: new Set(known.map((k) => String(k._id))),
        });
        switch (plan.kind) {
          case 'refuse':
            return { outcome: 'refused', reason: plan.reason };
          case 'unchanged':
            return { outcome: 'unchanged' };
          case 'retire':
            await towers.updateOne({ _id: record.tower_id }, { $set: { retired_at: now, updated_at: now } }, { session });
            return { outcome: 'retired' };
          case 'create':
          case 'update': {
            const f = plan.fields;
            if (plan.kind === 'create') {
              const row: Tower = {
                id: record.tower_id, name: f.name, lat: f.lat, lon: f.lon, radius_m: f.radius_m, state: 'unknown',
                agent_version: null, last_seen: null, managed_by: carrierId, retired_at: null, created_at: now, updated_at: now,
              };
              await insertOrConflict(() => towers.insertOne({ _id: row.id, ...row }, { session }), () => conflict('tower_id', 'tower already exists'));
            } else {
              await towers.updateOne(
                { _id: record.tower_id },
                { $set: { name: f.name, lat: f.lat, lon: f.lon, radius_m: f.radius_m, retired_at: null, updated_at: now } },
                { session },
              );
            }
            if (f.polygon) await polygons.updateOne({ _id: record.tower_id }, { $set: { polygon: f.polygon } }, { session, upsert: true });
            else await polygons.deleteOne({ _id: record.tower_id }, { session });
            if (plan.links) {
              await links.deleteMany({ tower_id: record.tower_id }, { session });
              for (const c of plan.links) {
                await links.insertOne({ _id: compositeKey(record.tower_id, c), tower_id: record.tower_id, carrier_id: c, created_at: now }, { session });
              }
            }
            return { outcome: plan.kind === 'create' ? 'created' : 'updated' };
          }
        }
      });
    },
    async applyDevice(carrierId, record, now) {
      return ctx.write(async ({ session }) => {
        await requireCarrier(ctx, carrierId, session);
        const _id = compositeKey(record.device_id, carrierId);
        const doc = await metadata.findOne({ _id }, { session });
        const before: MetadataFields | null = doc ? { os: doc.os, os_version: doc.os_version, model: doc.model, device_type: doc.device_type } : null;
        const { after, changed } = mergeDeviceMetadata<MetadataFields>(before, record, METADATA_KEYS);
        if (!changed) return { outcome: 'unchanged' };
        await metadata.updateOne({ _id }, { $set: { ...after, device_id: record.device_id, carrier_id: carrierId, updated_at: now } }, { session, upsert: true });
        return { outcome: before ? 'updated' : 'created' };
      });
    },
    async towerPolygon(towerId) {
      return (await polygons.findOne({ _id: towerId }))?.polygon ?? null;
    },
  };
}

export function createDeviceMetadataRepo(ctx: MongoContext): Store['deviceMetadata'] {
  const metadata = ctx.coll<MetadataDoc>(C.deviceMetadata);
  return {
    async forDevices(deviceIds) {
      if (deviceIds.length === 0) return [];
      const rows = await metadata.find({ device_id: { $in: [...new Set(deviceIds)] } }, { sort: { device_id: 1, updated_at: -1, carrier_id: 1 } }).toArray();
      const newest = new Map<string, DeviceMetadata>();
      for (const r of rows) if (!newest.has(r.device_id)) newest.set(r.device_id, strip(r));
      return [...newest.values()];
    },
  };
}

// Documents written before radsec_identity existed have no such field: a RADIUS/UDP client.
const toClient = (d: RadiusClientDoc): RadiusClient => ({ ...strip(d, 'secret'), radsec_identity: d.radsec_identity ?? null });

export function createRadiusClientRepo(ctx: MongoContext): Store['radiusClients'] {
  const coll = ctx.coll<RadiusClientDoc>(C.radiusClients);
  const requireTower = async (id: string, session: SessionLike) => {
    const res = await ctx.coll<IdDoc>(C.towers).updateOne({ _id: id }, { $inc: { write_guard: 1 } }, { session });
    if (res.matchedCount === 0) throw notFound('tower_id', 'no such tower');
  };
  const nasConflict = () => conflict('nas_identifier', 'a RADIUS client with this NAS-Identifier exists');
  return {
    async create(input) {
      return ctx.write(async ({ session }) => {
        await requireTower(input.tower_id, session);
        const now = ctx.now();
        const id = ctx.newId();
        const doc: RadiusClientDoc = {
          _id: id,
          id,
          nas_identifier: input.nas_identifier,
          tower_id: input.tower_id,
          radsec_identity: input.radsec_identity ?? null,
          secret: input.secret,
          created_at: now,
          updated_at: now,
        };
        await insertOrConflict(() => coll.insertOne(doc, { session }), nasConflict);
        return toClient(doc);
      });
    },
    async get(id) {
      const doc = await coll.findOne({ _id: id });
      return doc ? toClient(doc) : null;
    },
    async list(opts) {
      return ctx.listPage(coll, opts?.tower_id === undefined ? {} : { tower_id: opts.tower_id }, opts, 'radius_clients', 'asc', toClient);
    },
    async findByNasIdentifier(nasIdentifier) {
      const doc = await coll.findOne({ nas_identifier: nasIdentifier });
      return doc ? { ...toClient(doc), secret: doc.secret } : null;
    },
    async update(id, patch) {
      return ctx.write(async ({ session }) => {
        if (!(await coll.findOne({ _id: id }, { session }))) return null;
        if (patch.tower_id !== undefined) await requireTower(patch.tower_id, session);
        const set: Record<string, unknown> = { updated_at: ctx.now() };
        for (const k of ['nas_identifier', 'tower_id', 'secret', 'radsec_identity'] as const) if (patch[k] !== undefined) set[k] = patch[k];
        try {
          await coll.updateOne({ _id: id }, { $set: set }, { session });
        } catch (err) {
          if (isDuplicateKeyError(err)) throw nasConflict();
          throw err;
        }
        const doc = await coll.findOne({ _id: id }, { session });
        return doc ? toClient(doc) : null;
      });
    },
    async delete(id) {
      return (await coll.deleteOne({ _id: id })).deletedCount > 0;
    },
  };
}

const PURGE_SLICE = 5000;

const toSession = (d: SessionDoc): DeviceSession => strip(d, 'tenant_tower_session', 'nas');
const totalsKey = (tenantId: string, dim: 'device' | 'tower', key: string) => `${tenantId}:${dim}:${key}`;

export function createDeviceSessionRepo(ctx: MongoContext): Store['deviceSessions'] {
  const sessions = ctx.coll<SessionDoc>(C.deviceSessions);
  const records = ctx.coll<AccountingRecordDoc>(C.accountingRecords);
  const totals = ctx.coll<TotalsDoc>(C.sessionTotals);
  const bump = (tenantId: string, dim: 'device' | 'tower', key: string, d: TotalsDelta, session: SessionLike) =>
    totals.updateOne(
      { _id: totalsKey(tenantId, dim, key) },
      {
        $inc: { sessions: d.sessions, active: d.active, input_octets: d.input_octets, output_octets: d.output_octets },
        $max: { last_update_at: d.last_update_at },
        $setOnInsert: { tenant_id: tenantId, dim, key },
      },
      { session, upsert: true },
    );
  return {
    async record(input) {
      return ctx.write(async ({ session }) => {
        const guard = await ctx.coll<IdDoc>(C.tenants).updateOne({ _id: input.tenant_id }, { $inc: { write_guard: 1 } }, { session });
        if (guard.matchedCount === 0) throw notFound('tenant_id', 'no such tenant');
        let inserted = 0;
        let duplicates = 0;
        const changed = new Map<string, DeviceSession>();
        for (const rec of input.records) {
          const _id = compositeKey(input.tower_id, rec.key);
          if (await records.findOne({ _id }, { session })) {
            duplicates++;
            continue;
          }
          await records.insertOne({ _id, tenant_id: input.tenant_id, processed_at: input.now }, { session });
          inserted++;
          // A session is named by its NAS too: two NASes of one tower number theirs alike. A
          // record naming no NAS keeps the three-part key (every session stored before had it).
          const unnamedKey = compositeKey(input.tenant_id, input.tower_id, rec.session_id);
          const ttsKey = rec.nas === undefined ? unnamedKey : compositeKey(input.tenant_id, input.tower_id, rec.session_id, rec.nas);
          let doc = await sessions.findOne({ tenant_id: input.tenant_id, tenant_tower_session: ttsKey }, { session });
          if (!doc && rec.nas !== undefined) {
            // A session recorded before sessions were kept per NAS names none: the NAS that
            // continues it (same device) takes it over (the update below re-keys it), so its
            // Interim-Updates and Stop still reach it.
            const legacy = await sessions.findOne({ tenant_id: input.tenant_id, tenant_tower_session: unnamedKey }, { session });
            if (legacy?.device_id === rec.device_id) doc = legacy;
          }
          const existing = doc ? toSession(doc) : null;
          const { session: next, delta } = foldAccounting(existing, rec, { id: existing?.id ?? ctx.newId(), tenant_id: input.tenant_id, tower_id: input.tower_id });
          const named = rec.nas === undefined ? {} : { nas: rec.nas };
          await sessions.updateOne({ _id: next.id }, { $set: { ...next, ...named, tenant_tower_session: ttsKey } }, { session, upsert: true });
          await bump(input.tenant_id, 'device', next.device_id, delta, session);
          await bump(input.tenant_id, 'tower', input.tower_id, delta, session);
          changed.set(next.id, next);
        }
        return { inserted, duplicates, sessions: [...changed.values()] };
      });
    },
    async list(tenantId, opts) {
      const filter: Record<string, unknown> = { tenant_id: tenantId };
      for (const k of ['device_id', 'tower_id', 'status'] as const) if (opts?.[k] !== undefined) filter[k] = opts[k];
      return ctx.listPage(sessions, filter, opts, 'device_sessions', 'desc', toSession);
    },
    async get(tenantId, id) {
      const doc = await sessions.findOne({ _id: id, tenant_id: tenantId });
      return doc ? toSession(doc) : null;
    },
    async totals(tenantId, by, opts) {
      const page = await ctx.listPage(
        totals,
        { tenant_id: tenantId, dim: by },
        opts,
        'session_totals',
        'asc',
        (d) => ({ id: d.key, key: d.key, sessions: d.sessions, active: d.active, input_octets: d.input_octets, output_octets: d.output_octets, last_update_at: d.last_update_at }),
        { keyOf: (key) => totalsKey(tenantId, by, key) },
      );
      return { items: page.items.map(({ id: _id, ...rest }) => rest), next_cursor: page.next_cursor };
    },
    async stopActiveAtTower(towerId, at, terminateCause, nas) {
      return ctx.write(async ({ session }) => {
        const filter = { tower_id: towerId, status: 'active' as const, last_update_at: { $lte: at }, ...(nas === undefined ? {} : { nas }) };
        const open = await sessions.find(filter, { session }).toArray();
        for (const doc of open) {
          const { session: next, delta } = stopByReset(toSession(doc), at, terminateCause);
          await sessions.updateOne({ _id: next.id }, { $set: { status: next.status, stopped_at: next.stopped_at, last_update_at: next.last_update_at, terminate_cause: next.terminate_cause } }, { session });
          await bump(next.tenant_id, 'device', next.device_id, delta, session);
          await bump(next.tenant_id, 'tower', towerId, delta, session);
        }
        return open.length;
      });
    },
    async purge(tenantId, before) {
      let deleted = 0;
      for (;;) {
        const slice = await sessions.find({ tenant_id: tenantId, status: 'stopped', last_update_at: { $lt: before } }, { limit: PURGE_SLICE }).toArray();
        if (slice.length > 0) deleted += (await sessions.deleteMany({ tenant_id: tenantId, _id: { $in: slice.map((d) => d._id) } })).deletedCount;
        if (slice.length < PURGE_SLICE) break;
      }
      for (;;) {
        const slice = await records.find({ tenant_id: tenantId, processed_at: { $lt: before } }, { limit: PURGE_SLICE }).toArray();
        if (slice.length > 0) await records.deleteMany({ tenant_id: tenantId, _id: { $in: slice.map((d) => d._id) } });
        if (slice.length < PURGE_SLICE) break;
      }
      return deleted;
    },
    async summary(tenantId) {
      const rows = await totals.find({ tenant_id: tenantId, dim: 'tower' }).toArray();
      const sum = { sessions: 0, active: 0, input_octets: 0, output_octets: 0 };
      // One document per tower the tenant's devices used: bounded by the towers, not the traffic.
      for (const r of rows) {
        sum.sessions += r.sessions;
        sum.active += r.active;
        sum.input_octets += r.input_octets;
        sum.output_octets += r.output_octets;
      }
      return sum;
    },
  };
}
