/**
 * The command-ack journal under a burst of commands (a flood, or a broker that acknowledges no
 * ack, so the file holds thousands): each change rewrote the whole file, one rewrite queued per
 * ack, and each ack was published only after every rewrite queued before its own. Real files in a
 * temp dir; the rewrites are counted by wrapping replaceFile (shared/atomic-file.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import { SCHEMA_VERSION, type CommandAck } from '../shared/mqtt/payloads.js';
import { AckJournal } from './ack-journal.js';

const writes = vi.hoisted(() => ({ count: 0 }));

vi.mock('../shared/atomic-file.js', async (orig) => {
  const mod = await orig<typeof import('../shared/atomic-file.js')>();
  return {
    ...mod,
    replaceFile: (async (...args: Parameters<typeof mod.replaceFile>) => {
      writes.count++;
      return mod.replaceFile(...args);
    }) as typeof mod.replaceFile,
  };
});

const newId = createIdFactory();
const ack = (): CommandAck => ({ v: SCHEMA_VERSION, id: newId(), command_id: newId(), status: 'applied', ts: Date.now() });
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeplane-ack-journal-'));
  writes.count = 0;
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('AckJournal under a burst', () => {
  it('coalesces the rewrites of acks recorded together, and every one is on disk when its add() resolves', async () => {
    const file = join(dir, 'acks-T1.json');
    const j = new AckJournal(file);
    const acks = Array.from({ length: 200 }, ack);
    await Promise.all(acks.map((a) => j.add({ tenant_id: 'acme', ack: a })));
    // The first write took the first ack; the 199 recorded meanwhile went out together.
    expect(writes.count).toBe(2);
    const again = new AckJournal(file);
    expect(await again.load()).toEqual({ loaded: 200 });
    expect(again.pending().map((p) => p.ack.id)).toEqual(acks.map((a) => a.id));

    // Confirmations too; what is confirmed is gone from the file.
    writes.count = 0;
    await Promise.all(acks.slice(0, 150).map((a) => j.confirm(a.id)));
    expect(writes.count).toBe(2);
    await j.settled();
    const third = new AckJournal(file);
    expect(await third.load()).toEqual({ loaded: 50 });
  });

  it('a change made after a write started is written by a later write before its add() resolves', async () => {
    const file = join(dir, 'acks-T1.json');
    const j = new AckJournal(file);
    const first = j.add({ tenant_id: 'acme', ack: ack() });
    const late = ack();
    // Recorded while the first write is in flight.
    const second = j.add({ tenant_id: 'acme', ack: late });
    await second;
    const again = new AckJournal(file);
    await again.load();
    expect(again.pending().map((p) => p.ack.id)).toContain(late.id);
    await first;
  });
});
