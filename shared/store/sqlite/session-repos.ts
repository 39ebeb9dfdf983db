/**
 * RADIUS accounting clients (platform-level) and the device sessions their records build
 * (tenant-owned). rules/sessions.ts decides how a record changes a session and the totals.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { DeviceSession, RadiusClient, SessionTotals } from '../../domain.js';
import { foldAccounting, stopByReset, type TotalsDelta } from '../rules/sessions.js';
import type { Store } from '../port.js';
import type { SqliteContext, Stmt } from './context.js';
import { insertOrConflict, isUniqueViolation, limitClause, notFound } from './context.js';
import { keyset } from './cursor.js';
import { conflict } from '../rules/errors.js';

const CLIENT_COLUMNS = 'id, nas_identifier, tower_id, radsec_identity, created_at, updated_at';

export function createRadiusClientRepo(ctx: SqliteContext): Store['radiusClients'] {
  const db = ctx.db;
  const towerExists: Stmt<[string], { id: string }> = db.prepare('SELECT id FROM towers WHERE id = ?');
  const get: Stmt<[string], RadiusClient> = db.prepare(`SELECT ${CLIENT_COLUMNS} FROM radius_clients WHERE id = ?`);
  const byNas: Stmt<[string], RadiusClient & { secret: string }> = db.prepare(
    `SELECT ${CLIENT_COLUMNS}, secret FROM radius_clients WHERE nas_identifier = ?`,
  );
  const insert: Stmt<[RadiusClient & { secret: string }]> = db.prepare(
    `INSERT INTO radius_clients (id, nas_identifier, tower_id, radsec_identity, secret, created_at, updated_at)
     VALUES (@id, @nas_identifier, @tower_id, @radsec_identity, @secret, @created_at, @updated_at)`,
  );
  const del: Stmt<[string]> = db.prepare('DELETE FROM radius_clients WHERE id = ?');
  const requireTower = (id: string) => {
    if (!towerExists.get(id)) throw notFound('tower_id', 'no such tower');
  };
  return {
    async create(input) {
      return ctx.write(() => {
        requireTower(input.tower_id);
        const now = ctx.now();
        const row: RadiusClient = {
          id: ctx.newId(),
          nas_identifier: input.nas_identifier,
          tower_id: input.tower_id,
          radsec_identity: input.radsec_identity ?? null,
          created_at: now,
          updated_at: now,
        };
        insertOrConflict(() => insert.run({ ...row, secret: input.secret }), 'nas_identifier', 'a RADIUS client with this NAS-Identifier exists');
        return row;
      });
    },
    async get(id) {
      return get.get(id) ?? null;
    },
    async list(opts) {
      return ctx.listPage<RadiusClient>('radius_clients', CLIENT_COLUMNS, { tower_id: opts?.tower_id }, opts, 'asc');
    },
    async findByNasIdentifier(nasIdentifier) {
      return byNas.get(nasIdentifier) ?? null;
    },
    async update(id, patch) {
      return ctx.write(() => {
        if (!get.get(id)) return null;
        if (patch.tower_id !== undefined) requireTower(patch.tower_id);
        const sets: string[] = [];
        const values: unknown[] = [];
        for (const k of ['nas_identifier', 'tower_id', 'secret', 'radsec_identity'] as const) {
          if (patch[k] === undefined) continue;
          sets.push(`${k} = ?`);
          values.push(patch[k]);
        }
        sets.push('updated_at = ?');
        values.push(ctx.now());
        try {
          ctx.stmt(`UPDATE radius_clients SET ${sets.join(', ')} WHERE id = ?`).run(...values, id);
        } catch (err) {
          if (isUniqueViolation(err)) throw conflict('nas_identifier', 'a RADIUS client with this NAS-Identifier exists');
          throw err;
        }
        return get.get(id) ?? null;
      });
    },
    async delete(id) {
      return del.run(id).changes > 0;
    },
  };
}

const PURGE_SLICE = 5000;

const SESSION_COLUMNS =
  'id, tenant_id, tower_id, device_id, session_id, status, started_at, last_update_at, stopped_at, input_octets, output_octets, session_time_s, terminate_cause, records';

export function createDeviceSessionRepo(ctx: SqliteContext): Store['deviceSessions'] {
  const db = ctx.db;
  const markRecord: Stmt<[string, string, string, number]> = db.prepare(
    'INSERT INTO accounting_records (tower_id, key, tenant_id, processed_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
  );
  // A session is named by its NAS too (migration 14): two NASes of one tower number theirs alike.
  const findSession: Stmt<[string, string, string, string], DeviceSession> = db.prepare(
    `SELECT ${SESSION_COLUMNS} FROM device_sessions WHERE tenant_id = ? AND tower_id = ? AND nas = ? AND session_id = ?`,
  );
  const adoptSession: Stmt<[string, string]> = db.prepare('UPDATE device_sessions SET nas = ? WHERE id = ?');
  const getSession: Stmt<[string, string], DeviceSession> = db.prepare(`SELECT ${SESSION_COLUMNS} FROM device_sessions WHERE tenant_id = ? AND id = ?`);
  const insertSession: Stmt<[DeviceSession & { nas: string }]> = db.prepare(
    `INSERT INTO device_sessions (nas, ${SESSION_COLUMNS}) VALUES (@nas, ${SESSION_COLUMNS.split(', ').map((c) => `@${c}`).join(', ')})`,
  );
  const updateSession: Stmt<[DeviceSession]> = db.prepare(
    `UPDATE device_sessions SET status = @status, started_at = @started_at, last_update_at = @last_update_at, stopped_at = @stopped_at,
       input_octets = @input_octets, output_octets = @output_octets, session_time_s = @session_time_s,
       terminate_cause = @terminate_cause, records = @records WHERE id = @id`,
  );
  const addTotals: Stmt<[Record<string, unknown>]> = db.prepare(
    `INSERT INTO session_totals (tenant_id, dim, key, sessions, active, input_octets, output_octets, last_update_at)
     VALUES (@tenant_id, @dim, @key, @sessions, @active, @input_octets, @output_octets, @last_update_at)
     ON CONFLICT (tenant_id, dim, key) DO UPDATE SET sessions = sessions + excluded.sessions, active = active + excluded.active,
       input_octets = input_octets + excluded.input_octets, output_octets = output_octets + excluded.output_octets,
       last_update_at = MAX(last_update_at, excluded.last_update_at)`,
  );
  const summary: Stmt<[string], { sessions: number | null; active: number | null; input_octets: number | null; output_octets: number | null }> = db.prepare(
    `SELECT SUM(sessions) AS sessions, SUM(active) AS active, SUM(input_octets) AS input_octets, SUM(output_octets) AS output_octets
     FROM session_totals WHERE tenant_id = ? AND dim = 'tower'`,
  );
  const tenantExists: Stmt<[string], { id: string }> = db.prepare('SELECT id FROM tenants WHERE id = ?');
  const activeAtTower: Stmt<[string, number], DeviceSession> = db.prepare(
    `SELECT ${SESSION_COLUMNS} FROM device_sessions WHERE tower_id = ? AND status = 'active' AND last_update_at <= ?`,
  );
  const activeOfNas: Stmt<[string, number, string], DeviceSession> = db.prepare(
    `SELECT ${SESSION_COLUMNS} FROM device_sessions WHERE tower_id = ? AND status = 'active' AND last_update_at <= ? AND nas = ?`,
  );
  // Sliced like usage retention: a synchronous DELETE must not hold the write lock for long.
  const purgeSessions: Stmt<[string, string, number]> = db.prepare(
    `DELETE FROM device_sessions WHERE tenant_id = ? AND id IN (
       SELECT id FROM device_sessions WHERE tenant_id = ? AND status = 'stopped' AND last_update_at < ? ${limitClause(PURGE_SLICE)})`,
  );
  const purgeRecords: Stmt<[string, number]> = db.prepare(
    `DELETE FROM accounting_records WHERE (tower_id, key) IN (
       SELECT tower_id, key FROM accounting_records WHERE tenant_id = ? AND processed_at < ? ${limitClause(PURGE_SLICE)})`,
  );
  const bump = (tenantId: string, dim: 'device' | 'tower', key: string, d: TotalsDelta) =>
    addTotals.run({ tenant_id: tenantId, dim, key, ...d });

  return {
    async record(input) {
      return ctx.write(() => {
        if (!tenantExists.get(input.tenant_id)) throw notFound('tenant_id', 'no such tenant');
        let inserted = 0;
        let duplicates = 0;
        const changed = new Map<string, DeviceSession>();
        for (const rec of input.records) {
          if (markRecord.run(input.tower_id, rec.key, input.tenant_id, input.now).changes === 0) {
            duplicates++;
            continue;
          }
          inserted++;
          const nas = rec.nas ?? '';
          let existing = findSession.get(input.tenant_id, input.tower_id, nas, rec.session_id) ?? null;
          if (!existing && nas !== '') {
            // A session recorded before sessions were kept per NAS names none: the NAS that
            // continues it (same device) takes it over, so its Interim-Updates and Stop still reach it.
            const legacy = findSession.get(input.tenant_id, input.tower_id, '', rec.session_id);
            if (legacy !== undefined && legacy.device_id === rec.device_id) {
              adoptSession.run(nas, legacy.id);
              existing = legacy;
            }
          }
          const { session, delta } = foldAccounting(existing, rec, { id: existing?.id ?? ctx.newId(), tenant_id: input.tenant_id, tower_id: input.tower_id });
          if (existing) updateSession.run(session);
          else insertSession.run({ ...session, nas });
          bump(input.tenant_id, 'device', session.device_id, delta);
          bump(input.tenant_id, 'tower', input.tower_id, delta);
          changed.set(session.id, session);
        }
        return { inserted, duplicates, sessions: [...changed.values()] };
      });
    },
    async list(tenantId, opts) {
      return ctx.listPage<DeviceSession>(
        'device_sessions',
        SESSION_COLUMNS,
        { tenant_id: tenantId, device_id: opts?.device_id, tower_id: opts?.tower_id, status: opts?.status },
        opts,
        'desc',
      );
    },
    async get(tenantId, id) {
      return getSession.get(tenantId, id) ?? null;
    },
    async totals(tenantId, by, opts) {
      const plan = keyset(opts, 'session_totals', 'asc', 'key');
      const sql = `SELECT key AS id, sessions, active, input_octets, output_octets, last_update_at FROM session_totals
        WHERE tenant_id = ? AND dim = ? ${plan.where === null ? '' : `AND ${plan.where}`} ORDER BY ${plan.orderBy} ${limitClause(plan.limit + 1)}`;
      type Row = Omit<SessionTotals, 'key'> & { id: string };
      const page = plan.page(ctx.rows<Row>(sql, [tenantId, by, ...plan.params]));
      return { items: page.items.map(({ id, ...rest }) => ({ key: id, ...rest })), next_cursor: page.next_cursor };
    },
    async stopActiveAtTower(towerId, at, terminateCause, nas) {
      return ctx.write(() => {
        const open = nas === undefined ? activeAtTower.all(towerId, at) : activeOfNas.all(towerId, at, nas);
        for (const existing of open) {
          const { session, delta } = stopByReset(existing, at, terminateCause);
          updateSession.run(session);
          bump(session.tenant_id, 'device', session.device_id, delta);
          bump(session.tenant_id, 'tower', towerId, delta);
        }
        return open.length;
      });
    },
    async purge(tenantId, before) {
      let deleted = 0;
      for (;;) {
        const n = ctx.write(() => purgeSessions.run(tenantId, tenantId, before).changes);
        deleted += n;
        if (n < PURGE_SLICE) break;
        await yieldToEventLoop();
      }
      while (ctx.write(() => purgeRecords.run(tenantId, before).changes) === PURGE_SLICE) await yieldToEventLoop();
      return deleted;
    },
    async summary(tenantId) {
      const row = summary.get(tenantId);
      return { sessions: row?.sessions ?? 0, active: row?.active ?? 0, input_octets: row?.input_octets ?? 0, output_octets: row?.output_octets ?? 0 };
    },
  };
}
