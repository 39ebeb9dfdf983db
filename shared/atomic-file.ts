/**
 * State files written whole, for the tower's agent and the control plane's secrets alike: a file
 * is written aside (mode 0600: what these files hold is their owner's alone) and renamed — or,
 * for a file created once, linked — into place, so a crash leaves the old content or the new,
 * never part of one. With `sync` the data is on disk before the rename, and the rename itself
 * (the directory entry) is on disk before the promise resolves: machines lose power, and a rename
 * must not then publish a file whose data never reached the disk (an empty signing key file, an
 * empty service secret), nor be undone after the caller was told the file was written (fsync of a
 * file does not make its directory entry durable; POSIX asks for an fsync of the directory, as
 * SQLite and LevelDB do).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync } from 'node:fs';
import { link, mkdir, open, rename, unlink } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

export interface ReplaceOptions {
  /** fsync the data before the rename and the directory after it. */
  sync: boolean;
  /**
   * A temporary name of its own for this write (`<file>.<pid>.<random>.tmp`) instead of
   * `<file>.tmp`: for files several processes may write at once (a secrets directory shared by a
   * cluster). A crash can then leave one behind under a new name every time.
   */
  uniqueTmp?: boolean;
}

function tmpName(file: string, unique: boolean): string {
  return unique ? `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp` : `${file}.tmp`;
}

async function writeAside(tmp: string, data: string | Buffer, sync: boolean): Promise<void> {
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(data);
    if (sync) await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function replaceFile(file: string, data: string | Buffer, opts: ReplaceOptions): Promise<void> {
  const tmp = tmpName(file, opts.uniqueTmp ?? false);
  try {
    await writeAside(tmp, data, opts.sync);
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  if (opts.sync) await syncDirectory(dirname(file));
}

/**
 * Creates `file` with `data` unless it exists, durably (data, then directory entry), and never
 * visible half-written: the data is written and synced aside, then linked into place — link()
 * fails if the name exists, so of processes racing on a first start exactly one creates it and
 * the others read the winner's. Resolves true when this call created it.
 */
export async function createFileOnce(file: string, data: string | Buffer): Promise<boolean> {
  await makeDirectory(dirname(file), { mode: 0o700 });
  const tmp = tmpName(file, true);
  let created = true;
  try {
    await writeAside(tmp, data, true);
    await link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    created = false;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  // Also when another process won: its link may not be durable yet when this one goes on to use it.
  await syncDirectory(dirname(file));
  return created;
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
