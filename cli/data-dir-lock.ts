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
});
type LockInfo = z.infer<typeof LockSchema>;

export interface DataDirLock {
  file: string;
  /** Removes the lock file if it is still ours. Idempotent. */
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
  if (!holder) return true;
  if (holder.hostname !== here.host) return false;
  if (holder.boot_id && here.boot && holder.boot_id !== here.boot) return true;
  return !alive(holder.pid);
}

export async function lockDataDir(dir: string): Promise<DataDirLock> {
  const root = resolve(dir);
  await mkdir(root, { recursive: true, mode: 0o700 });
  const file = join(root, LOCK_FILE);
  const here = { host: hostname(), boot: bootId() };
  const mine: LockInfo = { pid: process.pid, hostname: here.host, boot_id: here.boot, started_at: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o600);
      try {
        await handle.writeFile(JSON.stringify(mine) + '\n');
      } finally {
        await handle.close();
      }
      let released = false;
      return {
        file,
        release: async () => {
          if (released) return;
          released = true;
          const current = await readLock(file);
          if (current?.pid === mine.pid && current.started_at === mine.started_at) await unlink(file).catch(() => undefined);
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new StartupError(`--data-dir ${dir}: cannot create the lock file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
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
    // Re-read just before removing: another starter may have replaced the stale lock meanwhile.
    const again = await readLock(file);
    if (JSON.stringify(again) !== JSON.stringify(holder)) continue;
    await unlink(file).catch(() => undefined);
  }
  throw new StartupError(`--data-dir ${root}: another process is taking the lock file ${file} at the same time; try again`);
}
