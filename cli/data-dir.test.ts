/**
 * The data dir's service secret (data-dir.ts): generated once and durably on a real temp
 * directory (fsyncs recorded by test/support/fsync-recorder.ts), shared by processes racing on a
 * first start, and refused with an error naming the file when it cannot be a secret.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { fsyncs } from '../test/support/fsync-recorder.js';
import { loadOrCreateSecret, prepareDataDir } from './data-dir.js';

vi.mock('node:fs', async (orig) => (await import('../test/support/fsync-recorder.js')).wrapFs(await orig<typeof import('node:fs')>()));
vi.mock('node:fs/promises', async (orig) => (await import('../test/support/fsync-recorder.js')).wrapFsPromises(await orig<typeof import('node:fs/promises')>()));

let base: string;

beforeEach(async () => {
  base = resolve(await mkdtemp(join(tmpdir(), 'edgeplane-datadir-')));
  fsyncs.clear();
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('the service secret', () => {
  it('is generated once, mode 0600, synced with its directory entry, and read back unchanged', async () => {
    const paths = await prepareDataDir(join(base, 'data'));
    expect(fsyncs.paths).toEqual([base]); // the data dir, in its parent
    expect((await stat(paths.root)).mode & 0o777).toBe(0o700);

    const secret = await loadOrCreateSecret(paths.serviceSecret);
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(fsyncs.count(paths.root)).toBeGreaterThan(0);
    expect((await stat(paths.serviceSecret)).mode & 0o777).toBe(0o600);
    expect(await loadOrCreateSecret(paths.serviceSecret)).toBe(secret);
  });

  it('is the same for every process starting on one data dir at once', async () => {
    const paths = await prepareDataDir(base);
    const secrets = await Promise.all(Array.from({ length: 6 }, () => loadOrCreateSecret(paths.serviceSecret)));
    expect(new Set(secrets).size).toBe(1);
    expect((await readFile(paths.serviceSecret, 'utf8')).trim()).toBe(secrets[0]);
  });

  it('is refused, naming the file and the way out, when the file is empty or too short', async () => {
    const paths = await prepareDataDir(base);
    await writeFile(paths.serviceSecret, '\n');
    await expect(loadOrCreateSecret(paths.serviceSecret)).rejects.toThrow(`${paths.serviceSecret} holds no secret; at least 24 are needed`);
    await writeFile(paths.serviceSecret, 'short-secret\n');
    await expect(loadOrCreateSecret(paths.serviceSecret)).rejects.toThrow(/holds a secret of 12 characters.*delete the file/);
    // Nothing was overwritten: what the operator put there stays for them to fix.
    expect(await readFile(paths.serviceSecret, 'utf8')).toBe('short-secret\n');
  });
});
