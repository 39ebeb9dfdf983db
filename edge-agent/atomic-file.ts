/**
 * The tower's state files are replaced whole: written to `<file>.tmp` (mode 0600: what they hold
 * is the tower's own) and renamed over the file, so a crash leaves the old content or the new,
 * never part of one. With `sync` the data is on disk before the rename, and the rename itself
 * (the directory entry) is on disk before the promise resolves: towers lose power, and a rename
 * must not then publish a file whose data never reached the disk, nor be undone after the caller
 * was told the file was written (fsync of a file does not make its directory entry durable;
 * POSIX asks for an fsync of the directory, as SQLite and LevelDB do).
 */
import { closeSync, fsyncSync, openSync } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

export async function replaceFile(file: string, data: string | Buffer, opts: { sync: boolean }): Promise<void> {
  const tmp = `${file}.tmp`;
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(data);
    if (opts.sync) await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
  if (opts.sync) await syncDirectory(dirname(file));
}

/** Makes the directory's entries (files created, renamed or removed in it) durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** `syncDirectory`, blocking: for code that already works synchronously (the journal). */
export function syncDirectorySync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * `mkdir -p` whose result outlives a power cut: each directory it created is synced into its
 * parent, or a state directory made on first start could vanish with every file synced into it.
 */
export async function makeDirectory(dir: string, opts: { mode?: number } = {}): Promise<void> {
  const target = resolve(dir);
  const first = await mkdir(target, { recursive: true, ...opts });
  if (first === undefined) return;
  for (let d = target; ; d = dirname(d)) {
    await syncDirectory(dirname(d));
    if (d === resolve(first) || dirname(d) === d) return;
  }
}
