/**
 * Remediation commands sent to towers and their lifecycle (DESIGN §4). Every step is recorded in
 * command_events, in the same transaction as the status it describes; so are the command.updated
 * webhook deliveries of its creation and of every status change (../rules/webhook-outbox.ts).
 */
import type { CommandEvent, CommandRecord, CommandStatus } from '../../domain.js';
import type { CommandInput, Store } from '../port.js';
import { applyTransition, newCommand, requireCommandDevice } from '../rules/commands.js';
import type { SqliteContext, Stmt } from './context.js';
import { EntityTable } from './entity-table.js';
import type { TenantRefs } from './refs.js';
import type { SqliteOutbox } from './webhook-repos.js';

const COMMAND_COLUMNS = [
  'id',
  'tenant_id',
  'tower_id',
  'device_id',
  'type',
  'app',
  'duration_s',
  'reason',
  'source',
  'rule_id',
  'issued_by',
  'status',
  'attempts',
  'created_at',
  'updated_at',
  'expires_at',
  'delivered_at',
  'acked_at',
  'ack_reason',
] as const;

export function createCommandRepo(ctx: SqliteContext, refs: TenantRefs, outbox: SqliteOutbox): Store['commands'] {
  const db = ctx.db;
  const table = new EntityTable<CommandRecord>(ctx, 'commands', COMMAND_COLUMNS, 'tenant', []);
  const cols = table.columnList;
  const insertEvent: Stmt<[CommandEvent]> = db.prepare(
    `INSERT INTO command_events (id, tenant_id, command_id, kind, at, detail)
     VALUES (@id, @tenant_id, @command_id, @kind, @at, @detail)`,
  );
  // Oldest first in recording order: ids are time-ordered and minted as each step is written,
  // whereas `at` comes from the caller (tower or dispatcher clock) and may not be monotonic.
  const listEvents: Stmt<[string, string], CommandEvent> = db.prepare(
    `SELECT id, tenant_id, command_id, kind, at, detail FROM command_events
     WHERE tenant_id = ? AND command_id = ? ORDER BY id`,
  );
  // The WHERE repeats the partial index's condition word for word so the planner can use it.
  const listOpen: Stmt<[], CommandRecord> = db.prepare(
    `SELECT ${cols} FROM commands WHERE status IN ('pending', 'delivered') ORDER BY id`,
  );
  const listOpenOfTower: Stmt<[string], CommandRecord> = db.prepare(
    `SELECT ${cols} FROM commands WHERE status IN ('pending', 'delivered') AND tower_id = ? ORDER BY id`,
  );
  const published: Stmt<[number, string, string], CommandRecord> = db.prepare(
    `UPDATE commands SET attempts = attempts + 1, updated_at = ? WHERE tenant_id = ? AND id = ? RETURNING ${cols}`,
  );
  const publishedIf: Stmt<[number, string, string, number], CommandRecord> = db.prepare(
    `UPDATE commands SET attempts = attempts + 1, updated_at = ?
     WHERE tenant_id = ? AND id = ? AND attempts = ? RETURNING ${cols}`,
  );
  // Guarded by the status read in the same transaction: a concurrent move makes this a no-op.
  const move: Stmt<[CommandStatus, number, number | null, number | null, string | null, string, string, CommandStatus]> =
    db.prepare(
      `UPDATE commands SET status = ?, updated_at = ?, delivered_at = ?, acked_at = ?, ack_reason = ?
       WHERE tenant_id = ? AND id = ? AND status = ?`,
    );
  const deviceOwner: Stmt<[string], string> = db
    .prepare<[string], string>('SELECT tenant_id FROM devices WHERE id = ?')
    .pluck();

  const record = (c: CommandRecord, kind: CommandEvent['kind'], at: number, detail: string | null): void => {
    insertEvent.run({ id: ctx.newId(), tenant_id: c.tenant_id, command_id: c.id, kind, at, detail });
  };

  /** Inside a write transaction. */
  const insertCommand = (input: CommandInput & { id?: string }): CommandRecord => {
    refs.requireTenant(input.tenant_id);
    requireCommandDevice(input.tenant_id, deviceOwner.get(input.device_id) ?? null);
    const now = ctx.now();
    const command = newCommand(input, input.id ?? ctx.newId(), now);
    table.insert(command);
    record(command, 'pending', now, null);
    outbox(command.tenant_id, 'command.updated', [command]);
    return command;
  };

  return {
    async create(input) {
      return ctx.write(() => insertCommand(input));
    },
    async createIfAbsent(input) {
      return ctx.write(() => {
        const existing = table.get(input.tenant_id, input.id);
        if (existing) return { command: existing, created: false };
        return { command: insertCommand(input), created: true };
      });
    },
    async get(tenantId, id) {
      return table.get(tenantId, id);
    },
    async list(tenantId, opts) {
      const filters = { tenant_id: tenantId, status: opts?.status, device_id: opts?.device_id, tower_id: opts?.tower_id };
      return table.list(filters, opts, 'desc');
    },
    async listOpen(filter) {
      const rows = filter?.tower_id !== undefined ? listOpenOfTower.all(filter.tower_id) : listOpen.all();
      return filter?.status ? rows.filter((c) => c.status === filter.status) : rows;
    },
    async markPublished(tenantId, id, at, opts) {
      return ctx.write(() => {
        const command =
          opts?.ifAttempts !== undefined ? publishedIf.get(at, tenantId, id, opts.ifAttempts) : published.get(at, tenantId, id);
        if (!command) return null;
        record(command, 'published', at, null);
        return command;
      });
    },
    async transition(tenantId, id, status, at, detail = null) {
      return ctx.write(() => {
        const before = table.get(tenantId, id);
        if (!before) return null;
        const after = applyTransition(before, status, at, detail);
        if (!after) return { command: before, changed: false };
        const moved =
          move.run(status, at, after.delivered_at, after.acked_at, after.ack_reason, tenantId, id, before.status).changes > 0;
        if (!moved) return { command: before, changed: false };
        record(after, status, at, detail);
        outbox(tenantId, 'command.updated', [after]);
        return { command: after, changed: true };
      });
    },
    async events(tenantId, id) {
      return listEvents.all(tenantId, id);
    },
  };
}
