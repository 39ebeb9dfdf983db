/**
 * Command lifecycle steps in the audit trail, against the real SQLite store and bus: each status
 * change is one 'system' record with the previous status as before, in the order published.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InProcessBus } from '../../shared/bus.js';
import type { AuditRecord, CommandRecord, CommandStatus } from '../../shared/domain.js';
import { SqliteStore } from '../../shared/store/sqlite/sqlite-store.js';
import { CommandAudit } from './command-audit.js';

let dir: string;
let store: SqliteStore;
let bus: InProcessBus;
let audit: CommandAudit;
let errors: unknown[];
let tenantId: string;
let clock: number;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-command-audit-'));
  clock = 1_700_000_000_000;
  store = new SqliteStore({ file: join(dir, 'db.sqlite'), now: () => clock });
  await store.init();
  tenantId = (await store.tenants.create({ name: 'Acme' })).id;
  bus = new InProcessBus();
  errors = [];
  audit = new CommandAudit({ store, bus, onError: (err) => errors.push(err) });
  audit.start();
});
afterEach(async () => {
  await audit.stop();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function newCommand(): Promise<CommandRecord> {
  const command = await store.commands.create({
    tenant_id: tenantId,
    tower_id: 'twr-1',
    device_id: 'dev-1',
    type: 'block_app',
    app: 'dropbox',
    duration_s: 600,
    source: 'auto',
    rule_id: 'rule-1',
    expires_at: clock + 60_000,
  });
  bus.publish('command.updated', { tenant_id: tenantId, command });
  return command;
}

async function move(command: CommandRecord, status: CommandStatus, detail: string | null = null): Promise<CommandRecord> {
  clock += 1000;
  const r = await store.commands.transition(tenantId, command.id, status, clock, detail);
  if (!r?.changed) throw new Error(`transition to ${status} refused`);
  bus.publish('command.updated', { tenant_id: tenantId, command: r.command });
  return r.command;
}

/** Oldest first, for reading as a story. */
async function steps(commandId: string): Promise<AuditRecord[]> {
  await audit.flush();
  return (await store.audit.list(tenantId, { resource_id: commandId, limit: 1000 })).items.reverse();
}

describe('CommandAudit', () => {
  it('records pending → delivered → applied as system steps with before and after', async () => {
    const pending = await newCommand();
    await move(pending, 'delivered');
    const applied = await move(pending, 'applied', 'blocked dropbox');

    const trail = await steps(pending.id);
    expect(trail.map((e) => e.action)).toEqual(['commands.pending', 'commands.delivered', 'commands.applied']);
    for (const e of trail) {
      expect(e).toMatchObject({
        tenant_id: tenantId,
        actor_kind: 'system',
        actor_id: null,
        actor_label: 'system',
        resource_type: 'command',
        resource_id: pending.id,
        method: null,
        path: null,
        ip: null,
      });
    }
    expect(trail.map((e) => e.before)).toEqual([null, { status: 'pending' }, { status: 'delivered' }]);
    expect(trail[0]!.after).toMatchObject({ status: 'pending', attempts: 0, ack_reason: null, type: 'block_app', app: 'dropbox', source: 'auto' });
    expect(trail[2]!.after).toMatchObject({ status: 'applied', ack_reason: 'blocked dropbox', device_id: 'dev-1', tower_id: 'twr-1' });
    expect(trail.map((e) => e.at)).toEqual([pending.updated_at, pending.updated_at + 1000, applied.updated_at]);
  });

  it('records failures with the agent’s reason and expiries', async () => {
    const a = await newCommand();
    await move(a, 'failed', 'app not installed');
    const b = await newCommand();
    await move(b, 'delivered');
    await move(b, 'expired', 'not acknowledged before expires_at');

    expect((await steps(a.id)).map((e) => [e.action, e.before, (e.after as { ack_reason: string | null }).ack_reason])).toEqual([
      ['commands.pending', null, null],
      ['commands.failed', { status: 'pending' }, 'app not installed'],
    ]);
    expect((await steps(b.id)).map((e) => e.action)).toEqual(['commands.pending', 'commands.delivered', 'commands.expired']);
    expect(await store.audit.list(tenantId, { actor_kind: 'system', action: 'commands.expired' })).toMatchObject({ items: [{ resource_id: b.id }] });
  });

  it('ignores a repeated event, forgets nothing it should know, and stops listening on stop()', async () => {
    const c = await newCommand();
    const delivered = await move(c, 'delivered');
    bus.publish('command.updated', { tenant_id: tenantId, command: delivered });
    expect((await steps(c.id)).map((e) => e.action)).toEqual(['commands.pending', 'commands.delivered']);

    // A fresh listener (a restart) does not know the previous status: before is null, not a guess.
    await audit.stop();
    audit = new CommandAudit({ store, bus, onError: (err) => errors.push(err) });
    audit.start();
    await move(c, 'applied');
    expect((await steps(c.id)).at(-1)).toMatchObject({ action: 'commands.applied', before: null });

    await audit.stop();
    await newCommand();
    await audit.flush();
    expect((await store.audit.list(tenantId, { action: 'commands.pending' })).items).toHaveLength(1);
    expect(errors).toEqual([]);
  });

  it('reports a failed write and keeps recording the next steps', async () => {
    await audit.stop();
    let failNext = true;
    const flaky = {
      audit: {
        ...store.audit,
        record: async (input: Parameters<SqliteStore['audit']['record']>[0]) => {
          if (failNext) {
            failNext = false;
            throw new Error('disk full');
          }
          return store.audit.record(input);
        },
      },
    };
    audit = new CommandAudit({ store: flaky, bus, onError: (err) => errors.push(err) });
    audit.start();
    const c = await newCommand();
    await move(c, 'delivered');
    expect((await steps(c.id)).map((e) => e.action)).toEqual(['commands.delivered']);
    expect(errors).toHaveLength(1);
  });
});
