/**
 * The journal against a failing disk and a damaged directory: file-system calls that fail the
 * way a tower's disk does (a full disk, a file system remounted read-only after I/O errors, an
 * fdatasync that reports EIO), and segments found shorter than their sealed name says. The file
 * system is the real one (temp directories); the failures are injected into Node's `fs` for
 * paths under the test's directory only, since no test here can break a disk. No sleeps.
 */
import { readdirSync, statSync, truncateSync } from 'node:fs';
import { Writable } from 'node:stream';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import { createLogger } from '../shared/logger.js';
import { type UsageBatch } from '../shared/mqtt/payloads.js';
import { filters, topics } from '../shared/mqtt/topics.js';
import { EdgeAgent, journalDir } from './edge-agent.js';
import { Journal, type ReplayEvent } from './journal/journal.js';
import { MessageRecorder, startTestBroker } from './test-broker.js';
import { publishTenant, startWithBundles, type TestTenant } from './test-bundles.js';

/** Which calls fail, by name, for paths under `under` (an errno code, or null: none). */
const faults = vi.hoisted(() => ({
  under: '' as string,
  unlinkSync: null as string | null,
  fdatasyncSync: null as string | null,
  /** fs/promises writes (FileHandle.writeFile), e.g. meta.log's rewrite at open. */
  writeFile: null as string | null,
}));

vi.mock('node:fs', async (orig) => {
  const fs = await orig<typeof import('node:fs')>();
  const { resolve: resolvePath } = await import('node:path');
  const fdPaths = new Map<number, string>();
  const fail = (name: keyof typeof faults, path: string | undefined): void => {
    const code = faults[name];
    if (code === null || code === '' || faults.under === '' || path === undefined || !path.startsWith(faults.under)) return;
    throw Object.assign(new Error(`${code}: injected failure, ${name} '${path}'`), { code });
  };
  const wrapped: typeof fs = {
    ...fs,
    openSync: ((path: string, ...rest: unknown[]) => {
      const fd = (fs.openSync as (...a: unknown[]) => number)(path, ...rest);
      fdPaths.set(fd, resolvePath(String(path)));
      return fd;
    }) as typeof fs.openSync,
    unlinkSync: ((path: string) => {
      fail('unlinkSync', resolvePath(String(path)));
      fs.unlinkSync(path);
    }) as typeof fs.unlinkSync,
    fdatasyncSync: ((fd: number) => {
      fail('fdatasyncSync', fdPaths.get(fd));
      fs.fdatasyncSync(fd);
    }) as typeof fs.fdatasyncSync,
  };
  return { ...wrapped, default: wrapped };
});

vi.mock('node:fs/promises', async (orig) => {
  const fsp = await orig<typeof import('node:fs/promises')>();
  const { resolve: resolvePath } = await import('node:path');
  const wrapped: typeof fsp = {
    ...fsp,
    open: (async (path: string, ...rest: unknown[]) => {
      const handle = await (fsp.open as (...a: unknown[]) => ReturnType<typeof fsp.open>)(path, ...rest);
      const abs = resolvePath(String(path));
      const writeFile = handle.writeFile.bind(handle);
      handle.writeFile = (async (...args: Parameters<typeof writeFile>) => {
        const code = faults.writeFile;
        if (code !== null && faults.under !== '' && abs.startsWith(faults.under)) throw Object.assign(new Error(`${code}: injected failure, write '${abs}'`), { code });
        return writeFile(...args);
      }) as typeof handle.writeFile;
      return handle;
    }) as typeof fsp.open,
  };
  return { ...wrapped, default: wrapped };
});

const newId = createIdFactory();
const MiB = 1024 * 1024;
let base: string;

const event = (i: number) => ({
  tenantId: 'acme',
  event: { id: newId(), ts: 1_767_000_000_000 + i, device_id: `dev-${i % 50}`, app: 'slack', action: 'upload_file' },
});

function readAll(j: Journal): ReplayEvent[] {
  const r = j.reader(j.firstSeq);
  const out: ReplayEvent[] = [];
  for (let chunk = r.read(1000); chunk.length > 0; chunk = r.read(1000)) out.push(...chunk);
  r.close();
  return out;
}

const segments = (dir: string): string[] => readdirSync(dir).filter((n) => n.endsWith('.seg')).sort();

/** 30 events journalled in `dir`, its first (sealed) segment cut in half on disk, then the journal opened again. */
async function reopenedWithFirstSegmentCut(dir: string): Promise<Journal> {
  const j = new Journal({ dir, maxBytes: MiB, fsyncMs: 1000 });
  await j.open();
  for (let i = 0; i < 30; i++) j.append(event(i));
  await j.close();
  const file = join(dir, segments(dir)[0]!);
  truncateSync(file, Math.floor(statSync(file).size / 2));
  const again = new Journal({ dir, maxBytes: MiB, fsyncMs: 1000 });
  await again.open();
  return again;
}

beforeEach(async () => {
  base = resolve(await mkdtemp(join(tmpdir(), 'edgeplane-journal-faults-')));
  faults.under = base;
});

afterEach(async () => {
  faults.under = '';
  faults.unlinkSync = null;
  faults.fdatasyncSync = null;
  faults.writeFile = null;
  await rm(base, { recursive: true, force: true });
});

describe('journal on a failing disk', () => {
  it('an acknowledgement that empties a segment the disk will not delete (read-only remount) is reported, never thrown: it runs in a PUBACK callback', async () => {
    const dir = join(base, 'journal');
    const errors: Error[] = [];
    const j = new Journal({ dir, maxBytes: MiB, fsyncMs: 1000, onError: (e) => errors.push(e) });
    await j.open();
    for (let i = 0; i < 20; i++) j.append(event(i));
    await j.close();
    // The next run replays the sealed segment; its PUBACK comes after the disk went read-only.
    const again = new Journal({ dir, maxBytes: MiB, fsyncMs: 1000, onError: (e) => errors.push(e) });
    await again.open();
    expect(readAll(again).map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    faults.unlinkSync = 'EROFS';
    expect(() => again.ack(Array.from({ length: 20 }, (_, i) => i), false)).not.toThrow();
    expect(errors.map((e) => (e as NodeJS.ErrnoException).code)).toContain('EROFS');
    expect(again.pendingEvents).toBe(0);
    expect(readAll(again)).toEqual([]);
    // Events go on being journalled.
    expect(again.append(event(20))).toBe(20);
    await again.close();
    // Once the disk is writable again, the acknowledged events are not sent a second time.
    faults.unlinkSync = null;
    const third = new Journal({ dir, maxBytes: MiB, fsyncMs: 1000 });
    const report = await third.open();
    expect(report.pending).toBe(1);
    expect(readAll(third).map((e) => e.seq)).toEqual([20]);
    await third.close();
  });

  it('with fsyncMs 0, an fdatasync that fails (EIO) fails that append alone: later events keep their own sequence numbers, and an ack never throws', async () => {
    const dir = join(base, 'journal');
    const errors: Error[] = [];
    const j = new Journal({ dir, maxBytes: MiB, fsyncMs: 0, onError: (e) => errors.push(e) });
    await j.open();
    const first = event(0);
    expect(j.append(first)).toBe(0);
    faults.fdatasyncSync = 'EIO';
    const failed = event(1);
    expect(() => j.append(failed)).toThrow(/EIO/);
    // The meta file's sync fails too: reported, not thrown (a PUBACK callback).
    expect(() => j.ack([0], false)).not.toThrow();
    expect(errors.map((e) => (e as NodeJS.ErrnoException).code)).toContain('EIO');
    faults.fdatasyncSync = null;
    const later = [event(2), event(3)];
    const seqs = later.map((e) => j.append(e));
    // Each sequence number reads back as the event it was given to.
    const byId = new Map(readAll(j).map((e) => [e.event.id, e.seq]));
    expect(seqs.map((s, i) => byId.get(later[i]!.event.id) === s)).toEqual([true, true]);
    j.ack(seqs, false);
    expect(readAll(j).filter((e) => e.event.id !== failed.event.id)).toEqual([]);
    await j.close();
    // A restart does not send the acknowledged events again.
    const again = new Journal({ dir, maxBytes: MiB, fsyncMs: 0 });
    await again.open();
    const ids = readAll(again).map((e) => e.event.id);
    expect(ids).not.toContain(first.event.id);
    expect(ids).not.toContain(later[0]!.event.id);
    expect(ids).not.toContain(later[1]!.event.id);
    await again.close();
  });

  it('opens on a full disk (meta.log cannot be rewritten): what was pending replays, and acks still reach meta.log', async () => {
    const dir = join(base, 'journal');
    const j = new Journal({ dir, maxBytes: MiB, fsyncMs: 1000 });
    await j.open();
    for (let i = 0; i < 10; i++) j.append(event(i));
    j.ack([0, 1, 2], false);
    await j.close();
    faults.writeFile = 'ENOSPC';
    const errors: Error[] = [];
    const again = new Journal({ dir, maxBytes: MiB, fsyncMs: 1000, onError: (e) => errors.push(e) });
    const report = await again.open();
    expect(report.pending).toBe(7);
    expect(errors.map((e) => (e as NodeJS.ErrnoException).code)).toContain('ENOSPC');
    expect(readAll(again).map((e) => e.seq)).toEqual([3, 4, 5, 6, 7, 8, 9]);
    again.ack([3, 4], false);
    await again.close();
    faults.writeFile = null;
    const third = new Journal({ dir, maxBytes: MiB, fsyncMs: 1000 });
    await third.open();
    expect(readAll(third).map((e) => e.seq)).toEqual([5, 6, 7, 8, 9]);
    await third.close();
  });
});

describe('journal segments damaged on disk', () => {
  it('a sealed segment shorter than its name says (zero-length, or cut): the events it lost are counted as corrupt, not skipped silently', async () => {
    const dir = join(base, 'journal');
    const j = new Journal({ dir, maxBytes: MiB, fsyncMs: 1000 });
    await j.open();
    for (let i = 0; i < 30; i++) j.append(event(i));
    await j.close();
    const [sealed] = segments(dir);
    expect(sealed).toMatch(/^0{16}-0{14}1e\.seg$/);
    truncateSync(join(dir, sealed!), 0);
    const again = new Journal({ dir, maxBytes: MiB, fsyncMs: 1000 });
    await again.open();
    expect(again.append(event(30))).toBe(30);
    expect(readAll(again).map((e) => e.seq)).toEqual([30]);
    expect(again.corruptEvents).toBe(30);
    await again.close();
  });

  it('a sealed segment cut in the middle of a record: the whole records before the cut replay, the rest are counted as corrupt', async () => {
    const dir = join(base, 'journal');
    const again = await reopenedWithFirstSegmentCut(dir);
    const read = readAll(again);
    expect(read.length).toBeGreaterThan(0);
    expect(read.length).toBeLessThan(30);
    expect(read.map((e) => e.seq)).toEqual(Array.from({ length: read.length }, (_, i) => i));
    expect(read.length + again.corruptEvents).toBe(30);
    await again.close();
  });
});

describe('journal segments damaged on disk, once counted', () => {
  it('a damaged segment is deleted once its readable events are acknowledged, and a restart neither reads nor counts its corrupt events again', async () => {
    const dir = join(base, 'journal');
    const again = await reopenedWithFirstSegmentCut(dir);
    const read = readAll(again);
    expect(read.length + again.corruptEvents).toBe(30);
    expect(again.pendingEvents).toBe(read.length);
    // Read again (a replay rewound by an overflow): nothing counted twice.
    readAll(again);
    expect(again.corruptEvents).toBe(30 - read.length);
    again.ack(read.map((e) => e.seq), false);
    expect(segments(dir)).toEqual([]);
    expect(again.bytes).toBe(statSync(join(dir, 'meta.log')).size);
    await again.close();

    const third = new Journal({ dir, maxBytes: MiB, fsyncMs: 1000 });
    expect((await third.open()).pending).toBe(0);
    expect(readAll(third)).toEqual([]);
    expect(third.corruptEvents).toBe(0);
    await third.close();
  });

  it('a restart before the readable events are acknowledged replays them, without counting the corrupt ones again', async () => {
    const dir = join(base, 'journal');
    const again = await reopenedWithFirstSegmentCut(dir);
    const read = readAll(again).map((e) => e.seq);
    const corrupt = again.corruptEvents;
    expect(corrupt).toBeGreaterThan(0);
    await again.close();

    const third = new Journal({ dir, maxBytes: MiB, fsyncMs: 1000 });
    expect((await third.open()).pending).toBe(read.length);
    expect(readAll(third).map((e) => e.seq)).toEqual(read);
    expect(third.corruptEvents).toBe(0);
    third.ack(read, false);
    expect(segments(dir)).toEqual([]);
    await third.close();
  });
});

describe('EdgeAgent with a journal on a disk gone read-only', () => {
  it('a replayed backlog acknowledged while its segment cannot be deleted: the error is reported, the agent goes on (no unhandled rejection ends it)', async () => {
    const TOWER = 'tower-ro';
    const ACME: TestTenant = { id: 'acme', version: 3, devices: [{ id: 'dev-1', roles: ['eng'] }], grants: [], defaultEffect: 'allow' };
    const broker = await startTestBroker();
    const cloud = await MessageRecorder.connect(broker.url, [filters.allUsage]);
    const stateDir = join(base, 'state');
    const agents: EdgeAgent[] = [];
    const make = (): EdgeAgent => {
      const a = new EdgeAgent({ url: broker.url, towerId: TOWER, password: 'pw', reconnectMinMs: 10, reconnectMaxMs: 50, bundleSettleMs: 30, batchMaxDelayMs: 1, stateDir });
      agents.push(a);
      return a;
    };
    try {
      await publishTenant(cloud, ACME, [TOWER]);
      const first = make();
      first.on('error', () => undefined);
      await startWithBundles(first);
      const offline = new Promise<void>((res) => first.once('offline', () => res()));
      first.simulateOutage({ holdMs: 600_000 });
      await offline;
      const ids = Array.from({ length: 20 }, () => first.observe({ device_id: 'dev-1', app: 'mail', action: 'send' }).event_id);
      await first.stop();
      expect(first.stats().journal_pending_events).toBe(20);

      faults.unlinkSync = 'EROFS';
      const second = make();
      const errors: Error[] = [];
      second.on('error', (e) => errors.push(e));
      await second.start();
      expect(await second.flush(10_000)).toBe(true);
      await cloud.waitFor(() => cloud.json<UsageBatch>(topics.usage('acme', TOWER)).flatMap((b) => b.events).length >= 20, '20 events at the cloud');
      expect(cloud.json<UsageBatch>(topics.usage('acme', TOWER)).flatMap((b) => b.events.map((e) => e.id))).toEqual(ids);
      expect(errors.map((e) => (e as NodeJS.ErrnoException).code)).toContain('EROFS');
      expect(second.stats().journal_pending_events).toBe(0);
      // Still running: new events are taken and sent.
      second.observe({ device_id: 'dev-1', app: 'mail', action: 'send' });
      expect(await second.flush(10_000)).toBe(true);
      await cloud.waitFor(() => cloud.json<UsageBatch>(topics.usage('acme', TOWER)).flatMap((b) => b.events).length >= 21, 'the new event at the cloud');
    } finally {
      for (const a of agents) await a.stop();
      await cloud.close();
      await broker.close();
    }
  });
});

describe('EdgeAgent restarted on a damaged journal', () => {
  it('the events of a segment emptied on disk are counted (stats().events_corrupt) and logged once (journal_corrupt); the others replay', async () => {
    const TOWER = 'tower-damaged';
    const ACME: TestTenant = { id: 'acme', version: 3, devices: [{ id: 'dev-1', roles: ['eng'] }], grants: [], defaultEffect: 'allow' };
    const broker = await startTestBroker();
    const cloud = await MessageRecorder.connect(broker.url, [filters.allUsage]);
    const stateDir = join(base, 'state');
    const agents: EdgeAgent[] = [];
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    });
    const make = (): EdgeAgent => {
      const a = new EdgeAgent({ url: broker.url, towerId: TOWER, password: 'pw', reconnectMinMs: 10, reconnectMaxMs: 50, bundleSettleMs: 30, batchMaxDelayMs: 1, stateDir, logger: createLogger('info', sink) });
      a.on('error', () => undefined);
      agents.push(a);
      return a;
    };
    try {
      await publishTenant(cloud, ACME, [TOWER]);
      const first = make();
      await startWithBundles(first);
      const offline = new Promise<void>((res) => first.once('offline', () => res()));
      first.simulateOutage({ holdMs: 600_000 });
      await offline;
      for (let i = 0; i < 20; i++) first.observe({ device_id: 'dev-1', app: 'mail', action: 'send' });
      await first.stop();
      const dir = journalDir(stateDir, TOWER);
      const [sealed] = segments(dir);
      truncateSync(join(dir, sealed!), 0);

      const second = make();
      await second.start();
      const later = second.observe({ device_id: 'dev-1', app: 'mail', action: 'send' }).event_id;
      expect(await second.flush(10_000)).toBe(true);
      await cloud.waitFor(() => cloud.json<UsageBatch>(topics.usage('acme', TOWER)).length > 0, 'the new event at the cloud');
      expect(cloud.json<UsageBatch>(topics.usage('acme', TOWER)).flatMap((b) => b.events.map((e) => e.id))).toEqual([later]);
      expect(second.stats().events_corrupt).toBe(20);
      expect(lines.filter((l) => l.event === 'journal_corrupt').map((l) => l.events)).toEqual([20]);
      // Counted once: the damaged segment is gone, and the next start neither reads nor counts it.
      expect(segments(dir)).not.toContain(sealed);
      await second.stop();
      const third = make();
      await third.start();
      expect(await third.flush(10_000)).toBe(true);
      expect(third.stats().events_corrupt).toBe(0);
      expect(lines.filter((l) => l.event === 'journal_corrupt').map((l) => l.events)).toEqual([20]);
    } finally {
      for (const a of agents) await a.stop();
      await cloud.close();
      await broker.close();
    }
  });
});
