/**
 * The durable-write helpers (atomic-file.ts) and the control plane's secrets written through them
 * (the JWT key ring): which files and directories get fsync'ed — what a power cut would find,
 * which no test here can cause. The file system is the real one (temp directories), wrapped only
 * to record each fsync (test/support/fsync-recorder.ts).
 */
import { readdir, readFile, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { fsyncs } from '../test/support/fsync-recorder.js';
import { createFileOnce, makeDirectory, replaceFile } from './atomic-file.js';
import { KeyRing } from './auth/tokens.js';

vi.mock('node:fs', async (orig) => (await import('../test/support/fsync-recorder.js')).wrapFs(await orig<typeof import('node:fs')>()));
vi.mock('node:fs/promises', async (orig) => (await import('../test/support/fsync-recorder.js')).wrapFsPromises(await orig<typeof import('node:fs/promises')>()));

let base: string;

beforeEach(async () => {
  base = resolve(await mkdtemp(join(tmpdir(), 'edgeplane-atomic-')));
  fsyncs.clear();
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('replaceFile', () => {
  it('with sync, puts the data on disk before the rename and the rename on disk before resolving', async () => {
    const file = join(base, 'state.json');
    await replaceFile(file, '{"v":1}', { sync: true });
    expect(fsyncs.paths).toEqual([`${file}.tmp`, base]);
    expect(await readFile(file, 'utf8')).toBe('{"v":1}');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('without sync, syncs nothing', async () => {
    await replaceFile(join(base, 'cache.json'), 'x', { sync: false });
    expect(fsyncs.paths).toEqual([]);
  });

  it('with a temporary name of its own, leaves no temporary file, also when the rename fails', async () => {
    await replaceFile(join(base, 'keys.json'), 'a', { sync: true, uniqueTmp: true });
    expect(await readdir(base)).toEqual(['keys.json']);
    expect(fsyncs.paths[0]).toMatch(/keys\.json\.\d+\.[0-9a-f]{8}\.tmp$/);
    // A directory in the way: the rename fails, the error reaches the caller, nothing is left.
    await makeDirectory(join(base, 'taken'));
    await expect(replaceFile(join(base, 'taken'), 'b', { sync: true, uniqueTmp: true })).rejects.toThrow();
    expect((await readdir(base)).sort()).toEqual(['keys.json', 'taken']);
  });
});

describe('makeDirectory', () => {
  it('syncs every directory it created into its parent, and nothing when they all existed', async () => {
    const deep = join(base, 'a', 'b');
    await makeDirectory(deep);
    expect([...fsyncs.paths].sort()).toEqual([base, join(base, 'a')]);
    fsyncs.clear();
    await makeDirectory(deep);
    expect(fsyncs.paths).toEqual([]);
  });
});

describe('createFileOnce', () => {
  it('creates the file whole and durably (data, then directory), once: a second writer keeps the first content', async () => {
    const file = join(base, 'secrets', 'service-secret');
    expect(await createFileOnce(file, 'first')).toBe(true);
    const dataSync = fsyncs.paths.findIndex((p) => p.endsWith('.tmp'));
    expect(dataSync).toBeGreaterThanOrEqual(0);
    expect(fsyncs.paths.lastIndexOf(join(base, 'secrets'))).toBeGreaterThan(dataSync);
    expect(fsyncs.paths).toContain(base); // the directory it made, in its parent
    expect((await stat(join(base, 'secrets'))).mode & 0o777).toBe(0o700);

    expect(await createFileOnce(file, 'second')).toBe(false);
    expect(await readFile(file, 'utf8')).toBe('first');
    expect(await readdir(join(base, 'secrets'))).toEqual(['service-secret']);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('of writers racing on one name, exactly one creates it and every one reads the same', async () => {
    const file = join(base, 'race');
    const created = await Promise.all(Array.from({ length: 8 }, (_, i) => createFileOnce(file, `writer ${i}`)));
    expect(created.filter(Boolean)).toHaveLength(1);
    expect(await readFile(file, 'utf8')).toBe(`writer ${created.indexOf(true)}`);
    expect(await readdir(base)).toEqual(['race']);
  });
});

describe('the JWT key ring file', () => {
  it('is created and rotated with its data and its directory entry synced', async () => {
    const file = join(base, 'data', 'jwt-keys.json');
    const ring = await KeyRing.open(file);
    expect(fsyncs.count(join(base, 'data'))).toBeGreaterThan(0);
    expect(fsyncs.paths.some((p) => p.startsWith(`${file}.`) && p.endsWith('.tmp'))).toBe(true);

    fsyncs.clear();
    const kid = await ring.rotate();
    const [dataSync, dirSync] = fsyncs.paths;
    expect(dataSync).toMatch(/jwt-keys\.json\.\d+\.[0-9a-f]{8}\.tmp$/);
    expect(dirSync).toBe(join(base, 'data'));
    expect((await KeyRing.open(file)).currentKid).toBe(kid);
    expect(await readdir(join(base, 'data'))).toEqual(['jwt-keys.json']);
  });

  it('refuses a file that is not a key ring with an error naming it, rather than a parse error', async () => {
    const file = join(base, 'jwt-keys.json');
    await writeFile(file, '');
    await expect(KeyRing.open(file)).rejects.toThrow(`signing key file ${file} is not a key ring`);
    await writeFile(file, '{"keys":[{"kid":1}]}');
    await expect(KeyRing.open(file)).rejects.toThrow(/is not a key ring \(unexpected shape\)/);
  });
});
