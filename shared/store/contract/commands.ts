/**
 * Contract: remediation commands and their forward-only lifecycle.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { CommandRecord, CommandStatus } from '../../domain.js';
import type { CommandInput, Store } from '../port.js';
import { eventId, expectError, ids, must, sortedIds, T0, walk, type ContractState } from './harness.js';

const STATUSES: readonly CommandStatus[] = ['pending', 'delivered', 'applied', 'failed', 'expired'];

/** The only moves a command may make (port: pending → delivered → applied|failed, → expired). */
const ALLOWED = new Set([
  'pending>delivered',
  'pending>applied',
  'pending>failed',
  'pending>expired',
  'delivered>applied',
  'delivered>failed',
  'delivered>expired',
]);

const commandInput = (tenantId: string, extra: Partial<CommandInput> = {}): CommandInput => ({
  tenant_id: tenantId,
  tower_id: 'tw-1',
  device_id: 'dev-1',
  type: 'block_app',
  app: 'slack',
  duration_s: 600,
  reason: 'rule r1: slack/upload denied',
  source: 'auto',
  rule_id: 'r1',
  expires_at: T0 + 60_000,
  ...extra,
});

export function describeCommandContract(state: ContractState): void {
  let store: Store;
  beforeEach(() => {
    store = state.store;
  });

  /** A new command moved to `status` along an allowed path. */
  async function commandIn(tenantId: string, status: CommandStatus): Promise<CommandRecord> {
    const c = await store.commands.create(commandInput(tenantId));
    if (status === 'pending') return c;
    return must(await store.commands.transition(tenantId, c.id, status, T0 + 1, `to ${status}`)).command;
  }

  describe('commands', () => {
    it('creates a pending command with its first step, readable only by its tenant', async () => {
      const a = await store.tenants.create({ name: 'a' });
      const b = await store.tenants.create({ name: 'b' });
      const input = commandInput(a.id, { issued_by: 'console-user-1', source: 'manual' });
      const c = await store.commands.create(input);
      expect(c).toEqual({
        ...input,
        id: c.id,
        status: 'pending',
        attempts: 0,
        created_at: c.created_at,
        updated_at: c.created_at,
        delivered_at: null,
        acked_at: null,
        ack_reason: null,
      });
      const minimal = await store.commands.create({
        tenant_id: a.id,
        tower_id: 'tw-1',
        device_id: 'dev-2',
        type: 'notify',
        source: 'escalation',
        expires_at: T0,
      });
      expect(minimal).toMatchObject({ app: null, duration_s: null, reason: null, rule_id: null, issued_by: null });
      expect(await store.commands.get(a.id, c.id)).toEqual(c);
      expect(await store.commands.get(b.id, c.id)).toBeNull();
      expect(await store.commands.get(a.id, 'no-such-command')).toBeNull();
      const steps = await store.commands.events(a.id, c.id);
      expect(steps.map(({ id: _id, ...step }) => step)).toEqual([
        { tenant_id: a.id, command_id: c.id, kind: 'pending', at: c.created_at, detail: null },
      ]);
      expect(await store.commands.events(b.id, c.id)).toEqual([]);
      await expectError(store.commands.create(commandInput('no-such-tenant')), 'NOT_FOUND', 'tenant_id');
      await store.devices.create(b.id, { id: 'b-phone', name: 'phone' });
      await expectError(store.commands.create(commandInput(a.id, { device_id: 'b-phone' })), 'NOT_FOUND', 'device_id');
      expect(sortedIds((await store.commands.list(a.id)).items)).toEqual(sortedIds([c, minimal]));
    });

    it('lists newest first with status, device and tower filters and a cursor', async () => {
      const a = await store.tenants.create({ name: 'a' });
      const b = await store.tenants.create({ name: 'b' });
      const c1 = await store.commands.create(commandInput(a.id));
      const c2 = await store.commands.create(commandInput(a.id, { device_id: 'dev-2' }));
      const c3 = await store.commands.create(commandInput(a.id, { tower_id: 'tw-2' }));
      const foreign = await store.commands.create(commandInput(b.id));
      await store.commands.transition(a.id, c2.id, 'delivered', T0);
      expect(ids((await store.commands.list(a.id)).items)).toEqual([c3.id, c2.id, c1.id]);
      expect(ids(await walk((cursor) => store.commands.list(a.id, { limit: 1, cursor })))).toEqual([c3.id, c2.id, c1.id]);
      expect(ids((await store.commands.list(a.id, { status: 'pending' })).items)).toEqual([c3.id, c1.id]);
      expect(ids((await store.commands.list(a.id, { status: 'delivered' })).items)).toEqual([c2.id]);
      expect(ids((await store.commands.list(a.id, { device_id: 'dev-1' })).items)).toEqual([c3.id, c1.id]);
      expect(ids((await store.commands.list(a.id, { tower_id: 'tw-2' })).items)).toEqual([c3.id]);
      expect(ids((await store.commands.list(a.id, { tower_id: 'tw-1', device_id: 'dev-1' })).items)).toEqual([c1.id]);
      expect(ids((await store.commands.list(b.id)).items)).toEqual([foreign.id]);
    });

    it('records each publish and each applied move, oldest first', async () => {
      const t = (await store.tenants.create({ name: 'a' })).id;
      const c = await store.commands.create(commandInput(t));
      expect(await store.commands.markPublished(t, c.id, T0 + 1)).toMatchObject({ attempts: 1, updated_at: T0 + 1, status: 'pending' });
      expect(await store.commands.markPublished(t, c.id, T0 + 2)).toMatchObject({ attempts: 2, updated_at: T0 + 2 });
      const delivered = must(await store.commands.transition(t, c.id, 'delivered', T0 + 3));
      expect(delivered).toEqual({
        changed: true,
        command: { ...c, attempts: 2, status: 'delivered', updated_at: T0 + 3, delivered_at: T0 + 3 },
      });
      expect(await store.commands.transition(t, c.id, 'delivered', T0 + 4)).toEqual({ command: delivered.command, changed: false });
      const applied = must(await store.commands.transition(t, c.id, 'applied', T0 + 5, 'blocked slack'));
      expect(applied).toEqual({
        changed: true,
        command: { ...delivered.command, status: 'applied', updated_at: T0 + 5, acked_at: T0 + 5, ack_reason: 'blocked slack' },
      });
      expect(await store.commands.get(t, c.id)).toEqual(applied.command);
      const steps = await store.commands.events(t, c.id);
      expect(steps.map((s) => [s.kind, s.at, s.detail])).toEqual([
        ['pending', c.created_at, null],
        ['published', T0 + 1, null],
        ['published', T0 + 2, null],
        ['delivered', T0 + 3, null],
        ['applied', T0 + 5, 'blocked slack'],
      ]);
    });

    it('allows exactly the forward moves; any other leaves the command and its steps alone', async () => {
      const t = (await store.tenants.create({ name: 'a' })).id;
      for (const from of STATUSES) {
        for (const to of STATUSES) {
          const what = `${from} → ${to}`;
          const before = await commandIn(t, from);
          const stepsBefore = await store.commands.events(t, before.id);
          const result = must(await store.commands.transition(t, before.id, to, T0 + 9, 'why'), what);
          if (!ALLOWED.has(`${from}>${to}`)) {
            expect(result, what).toEqual({ command: before, changed: false });
            expect(await store.commands.get(t, before.id), what).toEqual(before);
            expect(await store.commands.events(t, before.id), what).toEqual(stepsBefore);
            continue;
          }
          const acked = to === 'applied' || to === 'failed';
          expect(result, what).toEqual({
            changed: true,
            command: {
              ...before,
              status: to,
              updated_at: T0 + 9,
              delivered_at: to === 'delivered' ? T0 + 9 : before.delivered_at,
              acked_at: acked ? T0 + 9 : null,
              ack_reason: acked ? 'why' : null,
            },
          });
          const steps = await store.commands.events(t, before.id);
          expect(steps.slice(stepsBefore.length).map((s) => [s.kind, s.at, s.detail]), what).toEqual([[to, T0 + 9, 'why']]);
        }
      }
    });

    it('never reads or moves another tenant’s command', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const b = (await store.tenants.create({ name: 'b' })).id;
      const c = await store.commands.create(commandInput(a));
      expect(await store.commands.transition(b, c.id, 'delivered', T0)).toBeNull();
      expect(await store.commands.markPublished(b, c.id, T0)).toBeNull();
      expect(await store.commands.transition(a, 'no-such-command', 'delivered', T0)).toBeNull();
      expect(await store.commands.markPublished(a, 'no-such-command', T0)).toBeNull();
      expect(await store.commands.events(b, c.id)).toEqual([]);
      expect(await store.commands.events(a, 'no-such-command')).toEqual([]);
      expect((await store.commands.list(b)).items).toEqual([]);
      expect(await store.commands.get(a, c.id)).toEqual(c);
      expect(await store.commands.events(a, c.id)).toHaveLength(1);
    });

    it('creates a command with a chosen id once: a repeat returns it unchanged', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const b = (await store.tenants.create({ name: 'b' })).id;
      const id = eventId();
      const first = await store.commands.createIfAbsent({ ...commandInput(a), id });
      expect(first.created).toBe(true);
      expect(first.command).toMatchObject({ id, tenant_id: a, status: 'pending', attempts: 0 });
      await store.commands.markPublished(a, id, T0 + 1);
      const again = await store.commands.createIfAbsent({ ...commandInput(a, { reason: 'different' }), id });
      expect(again.created).toBe(false);
      expect(again.command).toEqual(await store.commands.get(a, id));
      expect(again.command.attempts).toBe(1);
      expect(await store.commands.events(a, id)).toHaveLength(2);
      // Another tenant's device is refused the same way as by create.
      const device = await store.devices.create(b, { name: 'phone' });
      await expectError(store.commands.createIfAbsent({ ...commandInput(a, { device_id: device.id }), id: eventId() }), 'NOT_FOUND', 'device');
    });

    it('records a publish only when attempts still match (compare-and-set)', async () => {
      const t = (await store.tenants.create({ name: 'a' })).id;
      const c = await store.commands.create(commandInput(t));
      expect(await store.commands.markPublished(t, c.id, T0 + 1, { ifAttempts: 0 })).toMatchObject({ attempts: 1 });
      // A second scheduler racing for the same attempt records nothing.
      expect(await store.commands.markPublished(t, c.id, T0 + 2, { ifAttempts: 0 })).toBeNull();
      expect(await store.commands.markPublished(t, c.id, T0 + 3, { ifAttempts: 1 })).toMatchObject({ attempts: 2 });
      const steps = await store.commands.events(t, c.id);
      expect(steps.map((s) => [s.kind, s.at])).toEqual([
        ['pending', c.created_at],
        ['published', T0 + 1],
        ['published', T0 + 3],
      ]);
    });

    it('lists open commands of one tower, and by status', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const b = (await store.tenants.create({ name: 'b' })).id;
      const p1 = await store.commands.create(commandInput(a, { tower_id: 'tw-9' }));
      const d1 = must(await store.commands.transition(a, (await store.commands.create(commandInput(a, { tower_id: 'tw-9' }))).id, 'delivered', T0)).command;
      const p2 = await store.commands.create(commandInput(b, { tower_id: 'tw-9' }));
      await store.commands.create(commandInput(a, { tower_id: 'tw-8' }));
      const done = await store.commands.create(commandInput(a, { tower_id: 'tw-9' }));
      await store.commands.transition(a, done.id, 'applied', T0);
      expect(sortedIds(await store.commands.listOpen({ tower_id: 'tw-9' }))).toEqual(sortedIds([p1, d1, p2]));
      expect(sortedIds(await store.commands.listOpen({ tower_id: 'tw-9', status: 'pending' }))).toEqual(sortedIds([p1, p2]));
      expect(sortedIds(await store.commands.listOpen({ tower_id: 'tw-9', status: 'delivered' }))).toEqual([d1.id]);
      expect(await store.commands.listOpen({ tower_id: 'nowhere' })).toEqual([]);
    });

    it('lists the open commands of every tenant and forgets a deleted tenant’s', async () => {
      const a = (await store.tenants.create({ name: 'a' })).id;
      const b = (await store.tenants.create({ name: 'b' })).id;
      const open = [await commandIn(a, 'pending'), await commandIn(a, 'delivered'), await commandIn(b, 'pending')];
      for (const status of ['applied', 'failed', 'expired'] as const) await commandIn(a, status);
      await commandIn(b, 'expired');
      const listed = await store.commands.listOpen();
      expect(sortedIds(listed)).toEqual(sortedIds(open));
      for (const c of listed) expect(c).toEqual(await store.commands.get(c.tenant_id, c.id));
      await store.tenants.delete(b);
      expect(sortedIds(await store.commands.listOpen())).toEqual(sortedIds(open.slice(0, 2)));
      expect(await store.commands.events(b, must(open[2]).id)).toEqual([]);
    });
  });
}
