/**
 * PersistentEnforcer on real files in a temp dir: what blocks, what lifts (by time, with fake
 * timers, or by command), what survives a restart, and how a bad state file is handled.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import { SCHEMA_VERSION, type Command, type CommandType } from '../shared/mqtt/payloads.js';
import { PersistentEnforcer, type ActiveBlock, type LiftCause, type PersistentEnforcerOptions } from './persistent-enforcer.js';

const newId = createIdFactory();
const T0 = 1_700_000_000_000;

function cmd(type: CommandType, extra: Partial<Command> = {}, now = T0): Command {
  return { v: SCHEMA_VERSION, id: newId(), type, device_id: 'd1', issued_at: now, expires_at: now + 60_000, ...extra };
}

describe('PersistentEnforcer', () => {
  let dir: string;
  let file: string;
  let clock: number;
  const open: PersistentEnforcer[] = [];
  let lifted: Array<{ block: ActiveBlock; cause: LiftCause }>;

  async function enforcer(opts: Partial<PersistentEnforcerOptions> = {}): Promise<PersistentEnforcer> {
    const e = new PersistentEnforcer({ stateFile: file, now: () => clock, onLifted: (block, cause) => lifted.push({ block, cause }), ...opts });
    open.push(e);
    await e.load();
    return e;
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-enforcer-'));
    file = join(dir, 'state', 'enforcer-t1.json');
    clock = T0;
    lifted = [];
  });

  afterEach(async () => {
    vi.useRealTimers();
    for (const e of open.splice(0)) await e.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('starts empty without a file; block_app blocks that app of that device of that tenant only', async () => {
    const e = await enforcer();
    expect(e.activeBlocks()).toEqual([]);
    const c = cmd('block_app', { app: 'tiktok', duration_s: 300 });
    expect(await e.applyCommand('acme', c)).toEqual({ status: 'applied' });
    expect(e.isBlocked('acme', 'd1', 'tiktok')).toEqual({ blocked: true, command_id: c.id, type: 'block_app' });
    expect(e.isBlocked('acme', 'd1', 'slack')).toBeNull();
    expect(e.isBlocked('acme', 'd2', 'tiktok')).toBeNull();
    expect(e.isBlocked('globex', 'd1', 'tiktok')).toBeNull();
    expect(e.activeBlocks()).toEqual([
      { tenant_id: 'acme', device_id: 'd1', app: 'tiktok', type: 'block_app', command_id: c.id, since: T0, until: T0 + 300_000 },
    ]);
    // Saved before the ack, atomically: no temp file is left behind.
    const saved = JSON.parse(await readFile(file, 'utf8')) as { blocks: unknown[]; results: unknown[] };
    expect(saved.blocks).toHaveLength(1);
    expect(saved.results).toEqual([{ command_id: c.id, tenant_id: 'acme', status: 'applied' }]);
    expect(await readdir(join(dir, 'state'))).toEqual(['enforcer-t1.json']);
  });

  it('block_device and quarantine block every app; unblock_device lifts both early, not app blocks', async () => {
    const e = await enforcer();
    const dev = cmd('block_device', { duration_s: 3600 });
    await e.applyCommand('acme', dev);
    await e.applyCommand('acme', cmd('quarantine', { duration_s: 60 }));
    await e.applyCommand('acme', cmd('block_app', { app: 'tiktok', duration_s: 60 }));
    expect(e.isBlocked('acme', 'd1', 'anything')).toEqual({ blocked: true, command_id: dev.id, type: 'block_device' });

    expect(await e.applyCommand('acme', cmd('unblock_device'))).toEqual({ status: 'applied' });
    expect(lifted.map((l) => [l.block.type, l.cause])).toEqual([
      ['block_device', 'unblocked'],
      ['quarantine', 'unblocked'],
    ]);
    expect(e.isBlocked('acme', 'd1', 'slack')).toBeNull();
    expect(e.isBlocked('acme', 'd1', 'tiktok')).toMatchObject({ type: 'block_app' });

    expect(await e.applyCommand('acme', cmd('unblock_app', { app: 'tiktok' }))).toEqual({ status: 'applied' });
    expect(e.isBlocked('acme', 'd1', 'tiktok')).toBeNull();
    // Lifting what is not in force still leaves the desired state: applied, with a reason.
    expect(await e.applyCommand('acme', cmd('unblock_app', { app: 'tiktok' }))).toEqual({ status: 'applied', reason: 'no block in force' });
  });

  it('records throttles without denying, acks notify, refuses invalid commands with a reason', async () => {
    const e = await enforcer();
    expect(await e.applyCommand('acme', cmd('throttle', { app: 'youtube', duration_s: 120 }))).toEqual({ status: 'applied' });
    expect(e.isBlocked('acme', 'd1', 'youtube')).toBeNull();
    expect(e.activeBlocks()).toMatchObject([{ type: 'throttle', app: 'youtube', until: T0 + 120_000 }]);
    expect(await e.applyCommand('acme', cmd('notify'))).toEqual({ status: 'applied' });

    expect(await e.applyCommand('acme', cmd('block_device'))).toEqual({ status: 'failed', reason: 'duration_s required' });
    expect(await e.applyCommand('acme', cmd('block_app', { duration_s: 5 }))).toEqual({ status: 'failed', reason: 'app required for block_app' });
    expect(await e.applyCommand('acme', cmd('unblock_app'))).toEqual({ status: 'failed', reason: 'app required for unblock_app' });
    expect(await e.applyCommand('acme', cmd('block_device', { duration_s: 5, expires_at: T0 - 1 }))).toEqual({ status: 'failed', reason: 'expired' });
    expect(e.activeBlocks().map((b) => b.type)).toEqual(['throttle']);
  });

  it('a shorter block never shortens a longer one of the same kind', async () => {
    const e = await enforcer();
    const long = cmd('block_device', { duration_s: 600 });
    await e.applyCommand('acme', long);
    await e.applyCommand('acme', cmd('block_device', { duration_s: 10 }));
    expect(e.activeBlocks()).toMatchObject([{ command_id: long.id, until: T0 + 600_000 }]);
  });

  it('lifts a block when its duration ends (fake timers), one timer for the earliest expiry', async () => {
    vi.useFakeTimers({ now: T0 });
    const e = await enforcer({ now: undefined });
    await e.applyCommand('acme', cmd('block_app', { app: 'tiktok', duration_s: 60 }, Date.now()));
    await e.applyCommand('acme', cmd('block_device', { duration_s: 120 }, Date.now()));
    vi.advanceTimersByTime(59_999);
    expect(e.isBlocked('acme', 'd1', 'tiktok')).toMatchObject({ type: 'block_device' });
    expect(lifted).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(lifted.map((l) => [l.block.type, l.cause])).toEqual([['block_app', 'expired']]);
    vi.advanceTimersByTime(60_000);
    expect(lifted.map((l) => l.block.type)).toEqual(['block_app', 'block_device']);
    expect(e.isBlocked('acme', 'd1', 'tiktok')).toBeNull();
    expect(vi.getTimerCount()).toBe(0);
    await e.close();
    // The lift was saved: a restart does not bring the blocks back.
    const again = await enforcer({ now: undefined });
    expect(again.activeBlocks()).toEqual([]);
  });

  it('checks the clock itself: a late timer never over-blocks', async () => {
    const e = await enforcer();
    await e.applyCommand('acme', cmd('block_device', { duration_s: 30 }));
    clock += 30_000;
    expect(e.isBlocked('acme', 'd1', 'slack')).toBeNull();
    expect(e.activeBlocks()).toEqual([]);
  });

  it('a block issued before an unblock already applied to its target (delivered out of order) is refused, not put in force', async () => {
    const e = await enforcer();
    // The unblocks come first, though issued after the blocks below.
    expect(await e.applyCommand('acme', cmd('unblock_device', {}, T0 + 10))).toMatchObject({ status: 'applied' });
    expect(await e.applyCommand('acme', cmd('unblock_app', { app: 'tiktok' }, T0 + 10))).toMatchObject({ status: 'applied' });
    const superseded = { status: 'failed', reason: 'superseded by a later unblock' };
    expect(await e.applyCommand('acme', cmd('block_device', { duration_s: 60 }, T0))).toEqual(superseded);
    expect(await e.applyCommand('acme', cmd('quarantine', { duration_s: 60 }, T0))).toEqual(superseded);
    expect(await e.applyCommand('acme', cmd('block_app', { app: 'tiktok', duration_s: 60 }, T0))).toEqual(superseded);
    expect(e.isBlocked('acme', 'd1', 'tiktok')).toBeNull();
    expect(e.activeBlocks()).toEqual([]);
    // Other targets, other tenants, and blocks issued after the unblock are not affected.
    const otherApp = cmd('block_app', { app: 'slack', duration_s: 60 }, T0);
    expect(await e.applyCommand('acme', otherApp)).toEqual({ status: 'applied' });
    expect(await e.applyCommand('globex', cmd('block_device', { duration_s: 60 }, T0))).toEqual({ status: 'applied' });
    const later = cmd('block_device', { duration_s: 60 }, T0 + 20);
    expect(await e.applyCommand('acme', later)).toEqual({ status: 'applied' });
    expect(e.isBlocked('acme', 'd1', 'tiktok')).toEqual({ blocked: true, command_id: later.id, type: 'block_device' });
  });

  it('refuses a late block after a restart too, and keeps each lift on disk only until its unblock expires', async () => {
    const first = await enforcer();
    // Unblocks issued at T0 + 10, living 60 s (cmd's expires_at); the blocks they overtook were issued at T0.
    await first.applyCommand('acme', cmd('unblock_device', {}, T0 + 10));
    await first.applyCommand('acme', cmd('unblock_app', { app: 'tiktok' }, T0 + 10));
    await first.close();

    clock += 1000;
    const second = await enforcer();
    const superseded = { status: 'failed', reason: 'superseded by a later unblock' };
    expect(await second.applyCommand('acme', cmd('block_device', { duration_s: 60 }, T0))).toEqual(superseded);
    expect(await second.applyCommand('acme', cmd('block_app', { app: 'tiktok', duration_s: 60 }, T0))).toEqual(superseded);
    expect(second.activeBlocks()).toEqual([]);
    const saved = async () => (JSON.parse(await readFile(file, 'utf8')) as { lifts?: Array<{ app: string | null }> }).lifts;
    expect((await saved())?.map((l) => l.app).sort()).toEqual([null, 'tiktok'].sort());

    // Past the unblocks' expiry every block issued before them has expired too: the next write drops them.
    clock = T0 + 10 + 60_000;
    await second.applyCommand('acme', cmd('notify', {}, clock));
    expect(await saved()).toEqual([]);
  });

  it('loads a state file written before lifts were kept', async () => {
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, JSON.stringify({ v: 1, blocks: [], results: [] }));
    const e = await enforcer();
    expect(await e.applyCommand('acme', cmd('block_device', { duration_s: 60 }))).toEqual({ status: 'applied' });
  });

  it('survives a restart: blocks still in force, results remembered, nothing applied twice', async () => {
    const first = await enforcer();
    const block = cmd('block_device', { duration_s: 600 });
    const bad = cmd('block_app', { duration_s: 600 });
    await first.applyCommand('acme', block);
    await first.applyCommand('acme', bad);
    await first.close();

    clock += 1000;
    const second = await enforcer();
    expect(second.isBlocked('acme', 'd1', 'slack')).toEqual({ blocked: true, command_id: block.id, type: 'block_device' });
    expect(second.previousResult('acme', block.id)).toEqual({ status: 'applied' });
    expect(second.previousResult('acme', bad.id)).toEqual({ status: 'failed', reason: 'app required for block_app' });
    expect(second.previousResult('globex', block.id)).toBeUndefined();

    // Lifted by an unblock; the redelivered block is answered with its first result, not re-applied.
    await second.applyCommand('acme', cmd('unblock_device'));
    expect(await second.applyCommand('acme', block)).toEqual({ status: 'applied' });
    expect(second.isBlocked('acme', 'd1', 'slack')).toBeNull();
  });

  it('lifts at load the blocks whose time ran out while the agent was down', async () => {
    const first = await enforcer();
    await first.applyCommand('acme', cmd('block_app', { app: 'tiktok', duration_s: 10 }));
    await first.applyCommand('acme', cmd('block_device', { duration_s: 100 }));
    await first.close();
    clock += 50_000;
    const second = await enforcer();
    expect(lifted.map((l) => [l.block.type, l.cause])).toEqual([['block_app', 'expired']]);
    expect(second.activeBlocks().map((b) => b.type)).toEqual(['block_device']);
  });

  it('remembers a bounded number of command results', async () => {
    const e = await enforcer({ resultCacheSize: 2 });
    const cmds = [cmd('notify'), cmd('notify'), cmd('notify')];
    for (const c of cmds) await e.applyCommand('acme', c);
    expect(cmds.map((c) => e.previousResult('acme', c.id)?.status)).toEqual([undefined, 'applied', 'applied']);
  });

  it('holds at most maxBlocks: a block for one more target is refused, counted and reported; renewals and freed room still apply', async () => {
    const full: Array<{ refused: number; maxBlocks: number }> = [];
    const e = await enforcer({ maxBlocks: 3, onFull: (info) => full.push(info) });
    for (const d of ['d1', 'd2', 'd3']) expect(await e.applyCommand('acme', cmd('block_device', { device_id: d, duration_s: 60 }))).toEqual({ status: 'applied' });
    const refused = cmd('block_app', { device_id: 'd4', app: 'tiktok', duration_s: 60 });
    expect(await e.applyCommand('acme', refused)).toEqual({ status: 'failed', reason: 'too many blocks in force (3)' });
    expect(await e.applyCommand('acme', cmd('throttle', { device_id: 'd5', duration_s: 60 }))).toMatchObject({ status: 'failed' });
    expect(e.isBlocked('acme', 'd4', 'tiktok')).toBeNull();
    expect(e.refusedFull).toBe(2);
    expect(full).toEqual([{ refused: 1, maxBlocks: 3 }]);
    // The state file holds only what is in force.
    expect((JSON.parse(await readFile(file, 'utf8')) as { blocks: unknown[] }).blocks).toHaveLength(3);
    // Renewing a hold in force adds none; an unblock makes room.
    expect(await e.applyCommand('acme', cmd('block_device', { device_id: 'd1', duration_s: 120 }))).toEqual({ status: 'applied' });
    expect(await e.applyCommand('acme', cmd('unblock_device', { device_id: 'd2' }))).toEqual({ status: 'applied' });
    expect(await e.applyCommand('acme', cmd('block_app', { device_id: 'd4', app: 'tiktok', duration_s: 60 }))).toEqual({ status: 'applied' });
    expect(e.activeBlocks()).toHaveLength(3);
  });

  it('a full table lifts the holds whose time ran out before it refuses one more', async () => {
    const e = await enforcer({ maxBlocks: 2 });
    await e.applyCommand('acme', cmd('block_device', { device_id: 'd1', duration_s: 10 }));
    await e.applyCommand('acme', cmd('block_device', { device_id: 'd2', duration_s: 60 }));
    // d1's time is up; its timer has not run yet (the clock is the test's).
    clock = T0 + 10_000;
    expect(await e.applyCommand('acme', cmd('block_device', { device_id: 'd3', duration_s: 60 }, clock))).toEqual({ status: 'applied' });
    expect(e.activeBlocks().map((b) => b.device_id).sort()).toEqual(['d2', 'd3']);
    expect(e.refusedFull).toBe(0);
  });

  it.each([
    ['not JSON', '{"v":1,"blocks":['],
    ['a wrong shape', JSON.stringify({ v: 1, blocks: [{ tenant_id: 'acme' }], results: [] })],
  ])('moves a corrupt state file (%s) aside and starts empty', async (_what, body) => {
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, body);
    const e = new PersistentEnforcer({ stateFile: file, now: () => clock });
    open.push(e);
    const outcome = await e.load();
    expect(outcome).toMatchObject({ state: 'corrupt', movedTo: `${file}.corrupt-${T0}` });
    expect(await readFile(`${file}.corrupt-${T0}`, 'utf8')).toBe(body);
    expect(e.activeBlocks()).toEqual([]);
    expect(await e.applyCommand('acme', cmd('block_device', { duration_s: 5 }))).toEqual({ status: 'applied' });
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({ v: 1, blocks: [{ type: 'block_device' }] });
  });

  it('acks failed and holds nothing when the state cannot be saved', async () => {
    const notADir = join(dir, 'plain-file');
    await writeFile(notADir, 'x');
    const e = new PersistentEnforcer({ stateFile: join(notADir, 'enforcer.json'), now: () => clock });
    open.push(e);
    expect((await e.load()).state).toBe('corrupt');
    const c = cmd('block_device', { duration_s: 60 });
    const result = await e.applyCommand('acme', c);
    expect(result.status).toBe('failed');
    expect(result.reason).toMatch(/^state not saved: /);
    expect(e.isBlocked('acme', 'd1', 'slack')).toBeNull();
    expect(e.previousResult('acme', c.id)).toBeUndefined();
  });

  it('refuses commands before load()', async () => {
    const e = new PersistentEnforcer({ stateFile: file });
    expect(await e.applyCommand('acme', cmd('notify'))).toEqual({ status: 'failed', reason: 'enforcer state is not loaded' });
  });
});
