/**
 * What the tower's state files do to survive a power cut, which no test here can cause: which
 * files and directories get fsync'ed, and when. The file system is the real one (temp
 * directories); `node:fs` and `node:fs/promises` are wrapped only to record each fsync and the
 * path it was for. A rename or a new file is durable only once its directory is synced.
 */
import { readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createIdFactory } from '../shared/ids.js';
import { makeDirectory, replaceFile } from './atomic-file.js';
import { BundleMirror } from './bundle-mirror.js';
import { Journal } from './journal/journal.js';

const rec = vi.hoisted(() => {
  const synced: string[] = [];
  const waiting: { path: string; resolve: () => void }[] = [];
  return {
    synced,
    fdPaths: new Map<number, string>(),
    /** One fsync (of any kind) of `path`. */
    note(path: string): void {
      synced.push(path);
      for (let i = waiting.length - 1; i >= 0; i--) {
        if (waiting[i]!.path === path) waiting.splice(i, 1)[0]!.resolve();
      }
    },
    /** Resolves at the next fsync of `path`. */
    next(path: string): Promise<void> {
      return new Promise((resolve) => waiting.push({ path, resolve }));
    },
  };
});

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const { resolve } = await import('node:path');
  const pathOf = (fd: number): string => rec.fdPaths.get(fd) ?? `fd:${fd}`;
  const wrapped = {
    ...fs,
    openSync: ((path: string, ...rest: unknown[]) => {
      const fd = (fs.openSync as (...a: unknown[]) => number)(path, ...rest);
      rec.fdPaths.set(fd, resolve(path));
      return fd;
    }) as typeof fs.openSync,
    fsyncSync: ((fd: number) => {
      fs.fsyncSync(fd);
      rec.note(pathOf(fd));
    }) as typeof fs.fsyncSync,
    fdatasyncSync: ((fd: number) => {
      fs.fdatasyncSync(fd);
      rec.note(pathOf(fd));
    }) as typeof fs.fdatasyncSync,
    fdatasync: ((fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
      const path = pathOf(fd);
      fs.fdatasync(fd, (err) => {
        if (!err) rec.note(path);
        cb(err);
      });
    }) as typeof fs.fdatasync,
  };
  return { ...wrapped, default: wrapped };
});

vi.mock('node:fs/promises', async (importOriginal) => {
  const fsp = await importOriginal<typeof import('node:fs/promises')>();
  const { resolve } = await import('node:path');
  const wrapped = {
    ...fsp,
    open: (async (path: string, ...rest: unknown[]) => {
      const handle = await (fsp.open as (...a: unknown[]) => Promise<import('node:fs/promises').FileHandle>)(path, ...rest);
      for (const method of ['sync', 'datasync'] as const) {
        const original = handle[method].bind(handle);
        handle[method] = async () => {
          await original();
          rec.note(resolve(path));
        };
      }
      return handle;
    }) as typeof fsp.open,
  };
  return { ...wrapped, default: wrapped };
});

const newId = createIdFactory();
let base: string;

beforeEach(async () => {
  base = resolve(await mkdtemp(join(tmpdir(), 'edgeplane-atomic-')));
  rec.synced.length = 0;
});

afterEach(async () => {
  vi.useRealTimers();
  await rm(base, { recursive: true, force: true });
});

const dirSyncs = (dir: string): number => rec.synced.filter((p) => p === dir).length;

describe('replaceFile and makeDirectory', () => {
  it('with sync, puts the data on disk before the rename and the rename on disk before resolving', async () => {
    const file = join(base, 'state.json');
    await replaceFile(file, '{"v":1}', { sync: true });
    expect(rec.synced).toEqual([`${file}.tmp`, base]);
    expect(await readFile(file, 'utf8')).toBe('{"v":1}');
  });

  it('without sync, syncs nothing', async () => {
    await replaceFile(join(base, 'cache.json'), 'x', { sync: false });
    expect(rec.synced).toEqual([]);
  });

  it('syncs every directory it created into its parent, and nothing when they all existed', async () => {
    const deep = join(base, 'a', 'b');
    await makeDirectory(deep);
    expect([...rec.synced].sort()).toEqual([base, join(base, 'a')]);
    rec.synced.length = 0;
    await makeDirectory(deep);
    expect(rec.synced).toEqual([]);
  });
});

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
      const next = appendUntilRotation(j, dir, 0); // the first segment is created
      rec.synced.length = 0;
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
      rec.synced.length = 0;
      let next = appendUntilRotation(j, dir, 0);
      expect(dirSyncs(dir)).toBe(0); // not on the append path
      const synced = rec.next(dir);
      vi.advanceTimersByTime(1000);
      await synced;
      expect(dirSyncs(dir)).toBe(1);

      // Appends without a new file leave the directory alone.
      j.append(event(next++));
      rec.synced.length = 0;
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
    rec.synced.length = 0;

    mirror.record('tenants/acme/towers/t1/policy', Buffer.from('head v1'));
    await mirror.settled();
    const [tmp, after] = rec.synced;
    expect(tmp).toMatch(/\.tmp$/);
    expect(after).toBe(dir);
    expect(rec.synced).toHaveLength(2);

    rec.synced.length = 0;
    mirror.record('tenants/acme/towers/t1/policy', Buffer.alloc(0));
    await mirror.settled();
    expect(rec.synced).toEqual([dir]);
    expect(readdirSync(dir)).toEqual([]);
    expect(errors).toEqual([]);
  });
});
