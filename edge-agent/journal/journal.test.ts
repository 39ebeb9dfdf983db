import { appendFileSync, openSync, readdirSync, readSync, statSync, writeSync, closeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createIdFactory } from '../../shared/ids.js';
import type { UsageEvent } from '../../shared/mqtt/payloads.js';
import { bytesToUlid, ulidToBytes, type JournalEvent } from './codec.js';
import { Journal, type ReplayEvent } from './journal.js';

const newId = createIdFactory();
const MiB = 1024 * 1024;

function event(i: number, opts: { local?: boolean; bytes?: boolean } = {}): JournalEvent {
  const e: UsageEvent = { id: newId(), ts: 1_767_000_000_000 + i * 3, device_id: `imei-35693803${String(i % 997).padStart(7, '0')}`, app: ['slack', 'dropbox', 'mail'][i % 3]!, action: ['send', 'upload_file'][i % 2]! };
  if (opts.bytes) e.bytes = i * 10;
  if (opts.local) e.local = i % 2 === 0 ? { effect: 'deny', reason: 'rule', rule_id: `01JRULE00000000000000000${String(i % 10).padStart(2, '0')}`, policy_version: 7 } : { effect: 'allow', reason: 'default', rule_id: null, policy_version: 7 };
  return { tenantId: i % 4 === 0 ? '01JTENANTB0000000000000000' : '01JTENANTA0000000000000000', event: e };
}

function readAll(j: Journal, from = j.firstSeq): ReplayEvent[] {
  const r = j.reader(from);
  const out: ReplayEvent[] = [];
  for (let chunk = r.read(1000); chunk.length > 0; chunk = r.read(1000)) out.push(...chunk);
  r.close();
  return out;
}

describe('journal', () => {
  let dir: string;
  const open: Journal[] = [];
  const journal = async (opts: Partial<ConstructorParameters<typeof Journal>[0]> = {}): Promise<Journal> => {
    const j = new Journal({ dir, maxBytes: 64 * MiB, fsyncMs: 1000, ...opts });
    open.push(j);
    await j.open();
    return j;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-journal-'));
  });
  afterEach(async () => {
    for (const j of open.splice(0)) await j.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps ULIDs as 16 bytes exactly', () => {
    for (let i = 0; i < 1000; i++) {
      const id = newId();
      expect(bytesToUlid(ulidToBytes(id))).toBe(id);
    }
    expect(bytesToUlid(ulidToBytes('7ZZZZZZZZZZZZZZZZZZZZZZZZZ'))).toBe('7ZZZZZZZZZZZZZZZZZZZZZZZZZ');
    expect(() => ulidToBytes('8ZZZZZZZZZZZZZZZZZZZZZZZZZ')).toThrow();
  });

  it('replays every event in order, exactly as appended, after a restart', async () => {
    const j = await journal();
    const events = Array.from({ length: 5000 }, (_, i) => event(i, { local: i % 3 === 0, bytes: i % 5 === 0 }));
    const seqs = events.map((e) => j.append(e));
    expect(seqs).toEqual(events.map((_, i) => i));
    expect(readAll(j).map((r) => r.event)).toEqual(events.map((e) => e.event));
    await j.close();
    const again = await journal();
    const replayed = readAll(again);
    expect(replayed.map(({ tenantId, event }) => ({ tenantId, event }))).toEqual(events);
    expect(again.nextSeq).toBe(5000);
    expect(again.append(event(9)) ).toBe(5000);
  });

  it('forgets what the broker acknowledged; a late local decision keeps its event until sent with it', async () => {
    const j = await journal();
    for (let i = 0; i < 10; i++) j.append(event(i));
    j.ack([0, 1, 2, 5], false);
    j.late(5, { effect: 'deny', reason: 'default', rule_id: null, policy_version: 3 });
    j.late(6, { effect: 'allow', reason: 'rule', rule_id: 'R1', policy_version: 3 });
    expect(readAll(j).map((r) => r.seq)).toEqual([3, 4, 5, 6, 7, 8, 9]);
    await j.close();
    const again = await journal();
    const pending = readAll(again);
    expect(pending.map((r) => r.seq)).toEqual([3, 4, 5, 6, 7, 8, 9]);
    expect(pending.find((r) => r.seq === 5)!.event.local).toEqual({ effect: 'deny', reason: 'default', rule_id: null, policy_version: 3 });
    expect(pending.find((r) => r.seq === 6)!.event.local).toEqual({ effect: 'allow', reason: 'rule', rule_id: 'R1', policy_version: 3 });
    again.ack([3, 4, 6, 7, 8, 9], false);
    // 6 went without its late decision: still pending; 5 and 6 sent with it: done.
    expect(readAll(again).map((r) => r.seq)).toEqual([5, 6]);
    again.ack([5, 6], true);
    expect(readAll(again)).toEqual([]);
    expect(again.pendingEvents).toBe(0);
    // The fully acknowledged (sealed) segment is gone.
    expect(readdirSync(dir).filter((n) => n.endsWith('.seg'))).toEqual([]);
  });

  /** A journal the test then "crashes": never closed, as after kill -9. */
  const crashing = async (): Promise<Journal> => {
    const j = new Journal({ dir, maxBytes: 64 * MiB });
    await j.open();
    return j;
  };

  it('detects a torn last record after a crash, cuts it, and replays the rest', async () => {
    const j = await crashing();
    for (let i = 0; i < 100; i++) j.append(event(i, { local: true }));
    // A crash in the middle of writing the 101st record: the journal is never closed, and the
    // file ends with half a record.
    const active = readdirSync(dir).find((n) => /^[0-9a-f]{16}\.seg$/.test(n))!;
    const file = join(dir, active);
    const whole = statSync(file).size;
    const partial = Buffer.alloc(20);
    const fd = openSync(file, 'r');
    readSync(fd, partial, 0, 20, whole - 40);
    closeSync(fd);
    appendFileSync(file, partial);
    const after = new Journal({ dir, maxBytes: 64 * MiB });
    open.push(after);
    const report = await after.open();
    expect(report.tornBytes).toBe(20);
    expect(report.pending).toBe(100);
    expect(readAll(after).map((r) => r.event)).toEqual(Array.from({ length: 100 }, (_, i) => i).map((i) => expect.objectContaining({ ts: 1_767_000_000_000 + i * 3 })));
    // Appending goes on after the cut, in a new segment.
    expect(after.append(event(100))).toBe(100);
    expect(readAll(after)).toHaveLength(101);
  });

  it('detects a damaged last record (bad checksum) the same way', async () => {
    const j = await crashing();
    const events = Array.from({ length: 50 }, (_, i) => event(i));
    for (const e of events) j.append(e);
    const file = join(dir, readdirSync(dir).find((n) => /^[0-9a-f]{16}\.seg$/.test(n))!);
    // Flip a byte of the last record's payload.
    const fd = openSync(file, 'r+');
    const size = statSync(file).size;
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, size - 3);
    b[0] = b[0]! ^ 0xff;
    writeSync(fd, b, 0, 1, size - 3);
    closeSync(fd);
    const after = new Journal({ dir, maxBytes: 64 * MiB });
    open.push(after);
    const report = await after.open();
    expect(report.tornBytes).toBeGreaterThan(0);
    expect(readAll(after).map((r) => r.event.id)).toEqual(events.slice(0, 49).map((e) => e.event.id));
  });

  it('stays within its disk budget, evicting the oldest segments and counting what they held', async () => {
    const evicted: Array<{ events: number; bytes: number }> = [];
    const j = await journal({ maxBytes: MiB, onEvicted: (e) => evicted.push(e) });
    const total = 60_000;
    for (let i = 0; i < total; i++) j.append(event(i, { local: true }));
    expect(j.bytes).toBeLessThanOrEqual(MiB);
    const lost = evicted.reduce((n, e) => n + e.events, 0);
    expect(lost).toBeGreaterThan(0);
    expect(j.evictedEvents).toBe(lost);
    const kept = readAll(j);
    // Oldest first: what is left is the newest, contiguous, and every event is either kept or counted.
    expect(kept.length + lost).toBe(total);
    expect(kept.at(-1)!.seq).toBe(total - 1);
    expect(kept[0]!.seq).toBe(lost);
  });

  it('measures bytes per event for a realistic mix (printed; the README quotes it)', async () => {
    const j = await journal({ maxBytes: 256 * MiB });
    const n = 100_000;
    for (let i = 0; i < n; i++) j.append(event(i, { local: i % 2 === 0, bytes: i % 4 === 0 }));
    j.ack(Array.from({ length: n }, (_, i) => i).filter((i) => i % 100 !== 0), true);
    const perEvent = j.bytes / n;
    console.info(`journal: ${perEvent.toFixed(1)} bytes/event (1,000 distinct devices, half decided locally); a week at 1,000 events/s = ${((perEvent * 1000 * 86_400 * 7) / 1e9).toFixed(1)} GB`);
    expect(perEvent).toBeLessThan(60);
  });
});
