/**
 * Records each fsync (fsync, fdatasync, FileHandle.sync/datasync) with the path it was for, so a
 * test can check what a power cut would find on disk — which no test here can cause. The file
 * system stays the real one: a test file wraps Node's modules with it from its own `vi.mock`
 * factories (they cannot refer to imports, so they load this module themselves):
 *
 *   vi.mock('node:fs', async (orig) => (await import('../test/support/fsync-recorder.js')).wrapFs(await orig<typeof import('node:fs')>()));
 *   vi.mock('node:fs/promises', async (orig) => (await import('../test/support/fsync-recorder.js')).wrapFsPromises(await orig<typeof import('node:fs/promises')>()));
 *
 * and reads `fsyncs` (the same module instance) in its tests. This module must not import the
 * modules it wraps.
 */
import { resolve } from 'node:path';

type Fs = typeof import('node:fs');
type FsPromises = typeof import('node:fs/promises');

const fdPaths = new Map<number, string>();
const waiting: { path: string; resolve: () => void }[] = [];

export const fsyncs = {
  /** Absolute paths, one entry per completed fsync, in order. */
  paths: [] as string[],
  clear(): void {
    this.paths.length = 0;
  },
  count(path: string): number {
    return this.paths.filter((p) => p === path).length;
  },
  /** Resolves at the next completed fsync of `path`. */
  next(path: string): Promise<void> {
    return new Promise((res) => waiting.push({ path, resolve: res }));
  },
};

function note(path: string): void {
  fsyncs.paths.push(path);
  for (let i = waiting.length - 1; i >= 0; i--) {
    if (waiting[i]!.path === path) waiting.splice(i, 1)[0]!.resolve();
  }
}

const pathOf = (fd: number): string => fdPaths.get(fd) ?? `fd:${fd}`;

export function wrapFs(fs: Fs): Fs {
  const wrapped: Fs = {
    ...fs,
    openSync: ((path: string, ...rest: unknown[]) => {
      const fd = (fs.openSync as (...a: unknown[]) => number)(path, ...rest);
      fdPaths.set(fd, resolve(path));
      return fd;
    }) as Fs['openSync'],
    fsyncSync: ((fd: number) => {
      fs.fsyncSync(fd);
      note(pathOf(fd));
    }) as Fs['fsyncSync'],
    fdatasyncSync: ((fd: number) => {
      fs.fdatasyncSync(fd);
      note(pathOf(fd));
    }) as Fs['fdatasyncSync'],
    fdatasync: ((fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
      const path = pathOf(fd);
      fs.fdatasync(fd, (err) => {
        if (!err) note(path);
        cb(err);
      });
    }) as Fs['fdatasync'],
  };
  return { ...wrapped, default: wrapped } as Fs;
}

export function wrapFsPromises(fsp: FsPromises): FsPromises {
  const wrapped: FsPromises = {
    ...fsp,
    open: (async (path: string, ...rest: unknown[]) => {
      const handle = await (fsp.open as (...a: unknown[]) => ReturnType<FsPromises['open']>)(path, ...rest);
      for (const method of ['sync', 'datasync'] as const) {
        const original = handle[method].bind(handle);
        handle[method] = async () => {
          await original();
          note(resolve(path));
        };
      }
      return handle;
    }) as FsPromises['open'],
  };
  return { ...wrapped, default: wrapped } as FsPromises;
}
