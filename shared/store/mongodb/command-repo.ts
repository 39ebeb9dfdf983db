/**
 * Remediation commands and their lifecycle. Every step is recorded in command_events in the same
 * transaction as the status it describes, and so are the command.updated webhook deliveries of its
 * creation and of every status change (../rules/webhook-outbox.ts); the moves themselves are
 * ../rules/commands.ts.
 */
import type { CommandEvent, CommandRecord } from '../../domain.js';
import type { CommandInput, Store } from '../port.js';
import { OPEN_STATUSES, applyTransition, newCommand, requireCommandDevice } from '../rules/commands.js';
import { C, type CommandDoc, type CommandEventDoc, type DeviceRegistryDoc } from './collections.js';
import { insertChecked, strip, type MongoContext } from './context.js';
import type { Document, SessionLike } from './db-like.js';
import { MongoEntity, type TenantRefs } from './entity.js';
import type { MongoOutbox } from './webhook-repos.js';

const toCommand = (d: CommandDoc): CommandRecord => strip(d);

export function createCommandRepo(ctx: MongoContext, refs: TenantRefs, outbox: MongoOutbox): Store['commands'] {
  const table = new MongoEntity<CommandDoc, CommandRecord>(ctx, C.commands, 'tenant', [], toCommand);
  const events = ctx.coll<CommandEventDoc>(C.commandEvents);
  const registry = ctx.coll<DeviceRegistryDoc>(C.deviceRegistry);

  const record = async (c: CommandRecord, kind: CommandEvent['kind'], at: number, detail: string | null, session: SessionLike) => {
    const event: CommandEvent = { id: ctx.newId(), tenant_id: c.tenant_id, command_id: c.id, kind, at, detail };
    await events.insertOne({ _id: event.id, ...event }, { session });
  };

  const insertCommand = async (input: CommandInput & { id?: string }, session: SessionLike): Promise<CommandRecord> => {
    await refs.requireTenant(session, input.tenant_id);
    requireCommandDevice(input.tenant_id, (await registry.findOne({ _id: input.device_id }, { session }))?.tenant_id ?? null);
    const now = ctx.now();
    const command = newCommand(input, input.id ?? ctx.newId(), now);
    await insertChecked(() => table.coll.insertOne({ _id: command.id, ...command }, { session }));
    await record(command, 'pending', now, null, session);
    await outbox(command.tenant_id, 'command.updated', [command], session);
    return command;
  };

  return {
    create: (input) => ctx.write(({ session }) => insertCommand(input, session)),
    async createIfAbsent(input) {
      return ctx.write(async ({ session }) => {
        const existing = await table.get(input.tenant_id, input.id, session);
        if (existing) return { command: existing, created: false };
        return { command: await insertCommand(input, session), created: true };
      });
    },
    get: (tenantId, id) => table.get(tenantId, id),
    list(tenantId, opts) {
      const filter: Document = { tenant_id: tenantId };
      if (opts?.status !== undefined) filter['status'] = opts.status;
      if (opts?.device_id !== undefined) filter['device_id'] = opts.device_id;
      if (opts?.tower_id !== undefined) filter['tower_id'] = opts.tower_id;
      return table.list(filter, opts, 'desc');
    },
    async listOpen(filter) {
      const query: Document = { status: filter?.status ?? { $in: [...OPEN_STATUSES] } };
      if (filter?.tower_id !== undefined) query['tower_id'] = filter.tower_id;
      return (await table.coll.find(query, { sort: { _id: 1 } }).toArray()).map(toCommand);
    },
    async markPublished(tenantId, id, at, opts) {
      return ctx.write(async ({ session }) => {
        const filter: Document = { _id: id, tenant_id: tenantId };
        if (opts?.ifAttempts !== undefined) filter['attempts'] = opts.ifAttempts;
        const doc = await table.coll.findOneAndUpdate(
          filter,
          { $inc: { attempts: 1 }, $set: { updated_at: at } },
          { session, returnDocument: 'after' },
        );
        if (!doc) return null;
        const command = toCommand(doc);
        await record(command, 'published', at, null, session);
        return command;
      });
    },
    async transition(tenantId, id, status, at, detail = null) {
      return ctx.write(async ({ session }) => {
        const before = await table.get(tenantId, id, session);
        if (!before) return null;
        const after = applyTransition(before, status, at, detail);
        if (!after) return { command: before, changed: false };
        // Guarded by the status read in this transaction: a concurrent move conflicts or no-ops.
        const moved = await table.coll.updateOne(
          { _id: id, tenant_id: tenantId, status: before.status },
          {
            $set: {
              status,
              updated_at: at,
              delivered_at: after.delivered_at,
              acked_at: after.acked_at,
              ack_reason: after.ack_reason,
            },
          },
          { session },
        );
        if (moved.matchedCount === 0) return { command: before, changed: false };
        await record(after, status, at, detail, session);
        await outbox(tenantId, 'command.updated', [after], session);
        return { command: after, changed: true };
      });
    },
    async events(tenantId, id) {
      // Oldest first in recording order: ids are minted as each step is written.
      const rows = await events.find({ tenant_id: tenantId, command_id: id }, { sort: { _id: 1 } }).toArray();
      return rows.map((d) => strip(d));
    },
  };
}
