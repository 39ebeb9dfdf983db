/**
 * What the tower's state files do to survive a power cut, which no test here can cause: which
 * files and directories the journal and the bundle copies fsync, and when (the helpers
 * themselves: shared/atomic-file.test.ts). The file system is the real one (temp directories),
 * wrapped only to record each fsync (test/support/fsync-recorder.ts). A rename, a new file or a
 * removal is durable only once its directory is synced.
 */
import { readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import { fsyncs } from '../test/support/fsync-recorder.js';
import { BundleMirror } from './bundle-mirror.js';
import { Journal } from './journal/journal.js';

vi.mock('node:fs', async (orig) => (await import('../test/support/fsync-recorder.js')).wrapFs(await orig<typeof import('node:fs')>()));
vi.mock('node:fs/promises', async (orig) => (await import('../test/support/fsync-recorder.js')).wrapFsPromises(await orig<typeof import('node:fs/promises')>()));

const newId = createIdFactory();
let base: string;

beforeEach(async () => {
  base = resolve(await mkdtemp(join(tmpdir(), 'edgeplane-durability-')));
  fsyncs.clear();
});

afterEach(async () => {
  vi.useRealTimers();
  await rm(base, { recursive: true, force: true });
});

const dirSyncs = (dir: string): number => fsyncs.count(dir);

describe('journal directory', () => {
  const event = (i: number) => ({
    tenantId: '01JTENANTA0000000000000000',
    event: { id: newId(), ts: 1_767_000_000_000 + i, device_id: `imei-${String(i).padStart(15, '0')}`, app: 'slack', action: 'upload_file' },
  });
  const segments = (dir: string): number => readdirSync(dir).filter((n) => n.endsWith('.seg')).length;

  /** Appends until the journal starts a new segment; returns how many appends that took. */
  function appendUntilRotation(j: Journal, dir: string, from: number): number {
    const before = segments(dir);
    let i = from;
    while (segments(dir) === before) {
      j.append(event(i++));
      if (i - from > 100_000) throw new Error('no rotation after 100,000 events');
    }
    return i;
  }

  it('with fsyncMs 0, syncs the directory as a segment is sealed and the next one created', async () => {
    const dir = join(base, 'journal');
    const j = new Journal({ dir, maxBytes: 1024 * 1024, fsyncMs: 0 });
    await j.open();
    try {
      expect(statSync(dir).mode & 0o777).toBe(0o700); // the tower's own: device and tenant ids
      const next = appendUntilRotation(j, dir, 0); // the first segment is created
      fsyncs.clear();
      appendUntilRotation(j, dir, next); // the first is sealed (renamed), a second created
      expect(dirSyncs(dir)).toBe(2);
    } finally {
      await j.close();
    }
  });

  it('with fsyncMs > 0, syncs the directory on the next sync tick after a change, and at close', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const dir = join(base, 'journal');
    const j = new Journal({ dir, maxBytes: 1024 * 1024, fsyncMs: 1000 });
    await j.open();
    try {
      fsyncs.clear();
      let next = appendUntilRotation(j, dir, 0);
      expect(dirSyncs(dir)).toBe(0); // not on the append path
      const synced = fsyncs.next(dir);
      vi.advanceTimersByTime(1000);
      await synced;
      expect(dirSyncs(dir)).toBe(1);

      // Appends without a new file leave the directory alone.
      j.append(event(next++));
      fsyncs.clear();
      vi.advanceTimersByTime(1000);
      expect(dirSyncs(dir)).toBe(0);

      appendUntilRotation(j, dir, next);
    } finally {
      await j.close();
    }
    // Closed before the tick: close synced what the rotation changed.
    expect(dirSyncs(dir)).toBe(1);
  });
});

describe('bundle mirror directory', () => {
  it('syncs the copy and then the directory for each write and each removal', async () => {
    const dir = join(base, 'bundles-t1');
    const errors: Error[] = [];
    const mirror = new BundleMirror(dir, { maxBytes: 1024, fileOverheadBytes: 0, onError: (err) => errors.push(err) });
    await mirror.load();
    fsyncs.clear();

    mirror.record('tenants/acme/towers/t1/policy', Buffer.from('head v1'));
    await mirror.settled();
    const [tmp, after] = fsyncs.paths;
    expect(tmp).toMatch(/\.tmp$/);
    expect(after).toBe(dir);
    expect(fsyncs.paths).toHaveLength(2);

    fsyncs.clear();
    mirror.record('tenants/acme/towers/t1/policy', Buffer.alloc(0));
    await mirror.settled();
    expect(fsyncs.paths).toEqual([dir]);
    expect(readdirSync(dir)).toEqual([]);
    expect(errors).toEqual([]);
  });
});
