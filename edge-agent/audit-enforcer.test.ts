/**
 * Fault injection on remediation state: a command whose duration the contract accepts (any
 * positive safe integer of seconds) but whose end, in ms, is no safe integer. Before the fix the
 * block was applied and saved, and the next start found the state file invalid, moved it aside
 * and dropped every block and command result it held.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import { CommandSchema, SCHEMA_VERSION, type Command } from '../shared/mqtt/payloads.js';
import { PersistentEnforcer } from './persistent-enforcer.js';

const newId = createIdFactory();
const T0 = 1_700_000_000_000;

function block(extra: Partial<Command>): Command {
  return { v: SCHEMA_VERSION, id: newId(), type: 'block_device', device_id: 'd1', issued_at: T0, expires_at: T0 + 60_000, duration_s: 600, ...extra };
}

describe('PersistentEnforcer against out-of-range durations', () => {
  let dir: string;
  let file: string;
  const open: PersistentEnforcer[] = [];

  async function enforcer(): Promise<{ e: PersistentEnforcer; outcome: Awaited<ReturnType<PersistentEnforcer['load']>> }> {
    const e = new PersistentEnforcer({ stateFile: file, now: () => T0 });
    open.push(e);
    return { e, outcome: await e.load() };
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-audit-enforcer-'));
    file = join(dir, 'enforcer-t1.json');
  });
  afterEach(async () => {
    for (const e of open.splice(0)) await e.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a block whose end overflows, and a restart still holds the blocks and results saved before it', async () => {
    const { e } = await enforcer();
    const kept = block({ device_id: 'd1' });
    expect(await e.applyCommand('acme', kept)).toEqual({ status: 'applied' });
    // Valid on the wire: the schema takes any positive integer.
    const huge = block({ device_id: 'd2', duration_s: 1e13 });
    expect(CommandSchema.safeParse(huge).success).toBe(true);
    expect(await e.applyCommand('acme', huge)).toEqual({ status: 'failed', reason: 'duration_s out of range' });
    expect(e.isBlocked('acme', 'd2', 'mail')).toBeNull();
    await e.close();

    const { e: again, outcome } = await enforcer();
    expect(outcome).toEqual({ state: 'loaded', blocks: 1, results: 2 });
    expect(again.isBlocked('acme', 'd1', 'mail')).toMatchObject({ blocked: true, command_id: kept.id });
    // The refused command is remembered as refused: a redelivery is not applied.
    expect(again.previousResult('acme', huge.id)).toEqual({ status: 'failed', reason: 'duration_s out of range' });
    expect((await readdir(dir)).filter((n) => n.includes('corrupt'))).toEqual([]);
  });
});
