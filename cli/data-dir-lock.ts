/**
 * One embedded control plane per data directory. Two would run two brokers and two command
 * dispatchers on one SQLite file and one broker session store. `<data-dir>/edgeplane.lock` names
 * the holder (pid, host, boot); a lock whose holder is gone (process ended, machine rebooted) is
 * stale and taken over. A lock written on another host cannot be checked from here: it is
 * honoured, and the message says how to clear it.
 */
import { readFileSync } from 'node:fs';
import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { StartupError } from './startup-error.js';

export const LOCK_FILE = 'edgeplane.lock';

const LockSchema = z.object({
  pid: z.number().int().positive(),
  hostname: z.string(),
  boot_id: z.string().nullable(),
  started_at: z.string(),
  /** Set when the holder let a kept lock file go (see LockOptions.keepFile). */
  released_at: z.string().optional(),
});
type LockInfo = z.infer<typeof LockSchema>;

export interface LockOptions {
  /**
   * The lock file is created once and kept: a later start takes it, and a stop releases it, by
   * rewriting it in place (padded to LOCK_RECORD_BYTES), which needs no new disk block. A start
   * on a full disk (the edge agent's journal opens on one) then still takes the lock; only the
   * very first start needs room for it. Without it, the file is created at each start and
   * removed at stop.
   */
  keepFile?: boolean;
}

/** A kept lock file's size: every rewrite fits in the block its first write allocated. */
export const LOCK_RECORD_BYTES = 512;

export interface DataDirLock {
  file: string;
  /** Lets the lock go if it is still ours: removes the file, or marks a kept one released. Idempotent. */
  release(): Promise<void>;
}

/** Linux names each boot; a lock from an earlier boot is stale whatever its pid. */
function bootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readLock(file: string): Promise<LockInfo | null> {
  try {
    const parsed = LockSchema.safeParse(JSON.parse(await readFile(file, 'utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

function stale(holder: LockInfo | null, here: { host: string; boot: string | null }): boolean {
  // Unreadable: a crash between create and write. Nothing can hold a lock it never wrote.
  if (!holder || holder.released_at !== undefined) return true;
  if (holder.hostname !== here.host) return false;
  if (holder.boot_id && here.boot && holder.boot_id !== here.boot) return true;
  return !alive(holder.pid);
}

/** The lock record, padded with spaces to `size` (JSON.parse reads through them). */
function lockRecord(info: LockInfo, size: number): Buffer {
  const json = JSON.stringify(info);
  return Buffer.from(json.padEnd(Math.max(size, json.length + 1) - 1, ' ') + '\n');
}

/**
 * Rewrites a kept lock file in place from its start, never shorter than it is (a truncation
 * would give its block back, and a full disk might not give it again).
 */
async function rewriteLock(file: string, info: LockInfo): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    const record = lockRecord(info, Math.max(LOCK_RECORD_BYTES, (await handle.stat()).size));
    await handle.write(record, 0, record.length, 0);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

export async function lockDataDir(dir: string, opts: LockOptions = {}): Promise<DataDirLock> {
  const root = resolve(dir);
  await mkdir(root, { recursive: true, mode: 0o700 });
  const file = join(root, LOCK_FILE);
  const here = { host: hostname(), boot: bootId() };
  const mine: LockInfo = { pid: process.pid, hostname: here.host, boot_id: here.boot, started_at: new Date().toISOString() };
  const held = (): DataDirLock => {
    let released = false;
    return {
      file,
      release: async () => {
        if (released) return;
        released = true;
        const current = await readLock(file);
        if (current?.pid !== mine.pid || current.started_at !== mine.started_at) return;
        if (opts.keepFile) await rewriteLock(file, { ...mine, released_at: new Date().toISOString() }).catch(() => undefined);
        else await unlink(file).catch(() => undefined);
      },
    };
  };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o600);
      try {
        await handle.writeFile(opts.keepFile ? lockRecord(mine, LOCK_RECORD_BYTES) : JSON.stringify(mine) + '\n');
      } finally {
        await handle.close();
      }
      return held();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new StartupError(`--data-dir ${dir}: cannot create the lock file ${file}: ${errorCode(err)}`);
      }
    }
    const holder = await readLock(file);
    if (!stale(holder, here)) {
      const who = holder!.hostname === here.host ? `pid ${holder!.pid}` : `pid ${holder!.pid} on host ${holder!.hostname}`;
      throw new StartupError(
        `--data-dir ${root} is in use by another edgeplane process (${who}, since ${holder!.started_at}; lock file ${file}). ` +
          `Stop that process first, or choose another --data-dir.` +
          (holder!.hostname === here.host ? '' : ` If that process is gone, delete the lock file.`),
      );
    }
    // Re-read just before taking it over: another starter may have replaced the stale lock meanwhile.
    const again = await readLock(file);
    if (JSON.stringify(again) !== JSON.stringify(holder)) continue;
    if (!opts.keepFile) {
      await unlink(file).catch(() => undefined);
      continue;
    }
    try {
      await rewriteLock(file, mine);
    } catch (err) {
      throw new StartupError(`--data-dir ${dir}: cannot take over the lock file ${file}: ${errorCode(err)}`);
    }
    // Another starter rewriting it at the same moment: the record read back says who holds it.
    const now = await readLock(file);
    if (now?.pid === mine.pid && now.started_at === mine.started_at) return held();
  }
  throw new StartupError(`--data-dir ${root}: another process is taking the lock file ${file} at the same time; try again`);
}

/** `ENOSPC (no space left on the device)`: the code, and what the common ones mean. */
function errorCode(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return `${code} (no space left on the device)`;
  return code ?? (err as Error).message;
}
