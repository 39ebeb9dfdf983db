/**
 * `edgeplane agent`'s lock on its --state-dir on a full disk. The journal opens on a full disk
 * (audit-journal-faults.test.ts); the lock must too, or the agent cannot start at all. The file
 * system is the real one (a temp directory); the full disk is injected into Node's `fs/promises`
 * for paths under the test's directory only: a write that needs a new block (past the 4 KiB
 * blocks the file already has) fails with ENOSPC, as on a full ext4. No sleeps.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { lockStateDir } from '../cli/commands/agent.js';
import { LOCK_FILE } from '../cli/data-dir-lock.js';
import { journalDir } from './journal-dir.js';

const disk = vi.hoisted(() => ({ under: '', full: false }));

vi.mock('node:fs/promises', async (orig) => {
  const fsp = await orig<typeof import('node:fs/promises')>();
  const { resolve: resolvePath } = await import('node:path');
  const BLOCK = 4096;
  const wrapped: typeof fsp = {
    ...fsp,
    open: (async (path: string, ...rest: unknown[]) => {
      const handle = await (fsp.open as (...a: unknown[]) => ReturnType<typeof fsp.open>)(path, ...rest);
      const abs = resolvePath(String(path));
      /** Fails a write ending past the blocks the file holds, while the disk is full. */
      const check = async (end: number): Promise<void> => {
        if (!disk.full || disk.under === '' || !abs.startsWith(disk.under)) return;
        const allocated = Math.ceil((await handle.stat()).size / BLOCK) * BLOCK;
        if (end > allocated) throw Object.assign(new Error(`ENOSPC: injected full disk, write '${abs}'`), { code: 'ENOSPC' });
      };
      const writeFileOrig = handle.writeFile.bind(handle);
      handle.writeFile = (async (data: string | Uint8Array, ...more: unknown[]) => {
        await check(typeof data === 'string' ? Buffer.byteLength(data) : data.length);
        return (writeFileOrig as (...a: unknown[]) => Promise<void>)(data, ...more);
      }) as typeof handle.writeFile;
      const writeOrig = handle.write.bind(handle);
      handle.write = (async (buf: Uint8Array, offset: number, length: number, position: number) => {
        await check(position + length);
        return writeOrig(buf, offset, length, position);
      }) as typeof handle.write;
      return handle;
    }) as typeof fsp.open,
  };
  return { ...wrapped, default: wrapped };
});

const TOWER = 'T-full';
let base: string;

beforeEach(async () => {
  base = resolve(await mkdtemp(join(tmpdir(), 'edgeplane-agent-lock-')));
  disk.under = base;
});

afterEach(async () => {
  disk.under = '';
  disk.full = false;
  await rm(base, { recursive: true, force: true });
});

const lockFile = (): string => join(journalDir(base, TOWER), LOCK_FILE);
const holder = async (): Promise<{ pid: number; released_at?: string }> => JSON.parse(await readFile(lockFile(), 'utf8')) as { pid: number; released_at?: string };

describe('edgeplane agent: the --state-dir lock on a full disk', () => {
  it('a restart after a clean stop takes the lock on a full disk (the file is kept and rewritten in place), and still refuses a second agent', async () => {
    const first = await lockStateDir(base, TOWER);
    await first.release();
    expect((await holder()).released_at).toEqual(expect.any(String));

    disk.full = true;
    const second = await lockStateDir(base, TOWER);
    expect(await holder()).toMatchObject({ pid: process.pid });
    expect((await holder()).released_at).toBeUndefined();
    await expect(lockStateDir(base, TOWER)).rejects.toThrow(/is in use by another edgeplane agent of tower T-full/);
    await second.release();
    expect((await holder()).released_at).toEqual(expect.any(String));
  });

  it('a restart after kill -9 takes over the dead holder\'s lock on a full disk', async () => {
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    // What a holder killed with -9 left (an agent of the version that removed the file at stop,
    // too): its record, never released.
    await mkdir(journalDir(base, TOWER), { recursive: true });
    await writeFile(lockFile(), JSON.stringify({ pid: dead, hostname: hostname(), boot_id: null, started_at: new Date().toISOString() }) + '\n');

    disk.full = true;
    const second = await lockStateDir(base, TOWER);
    expect(await holder()).toMatchObject({ pid: process.pid });
    await second.release();
  });

  it('a first start on a full disk (no lock file yet) fails naming the cause', async () => {
    disk.full = true;
    await expect(lockStateDir(base, TOWER)).rejects.toThrow(/^--state-dir .+: cannot create the lock file .+: ENOSPC \(no space left on the device\)$/);
  });
});
