/**
 * The agent's copy of its bundle documents (bundle-mirror.ts) on a real temp directory: what a
 * later run reads back, writes skipped when nothing changed, the byte bound, and files that are
 * not copies.
 */
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BundleMirror, FILE_OVERHEAD_BYTES, mirrorFile } from './bundle-mirror.js';

let dir: string;
const errors: Error[] = [];

/** Without the per-file overhead unless asked: the byte figures below are the payloads'. */
function mirror(maxBytes = 1024, fileOverheadBytes = 0): BundleMirror {
  return new BundleMirror(dir, { maxBytes, fileOverheadBytes, onError: (err) => errors.push(err) });
}

beforeEach(async () => {
  dir = join(await mkdtemp(join(tmpdir(), 'edgeplane-mirror-')), 'bundles-t1');
  errors.length = 0;
});

afterEach(async () => {
  await rm(join(dir, '..'), { recursive: true, force: true });
});

const HEAD = 'tenants/acme/towers/t1/policy';
const PART = 'tenants/acme/towers/t1/policy/0';
const DIRECTORY = 'directory/tok-1';

describe('BundleMirror', () => {
  it('gives a later run each topic’s last payload and the one before; an empty payload removes the topic', async () => {
    const first = mirror();
    await first.load();
    first.record(HEAD, Buffer.from('head v1'));
    first.record(PART, Buffer.from('part 0'));
    first.record(HEAD, Buffer.from('head v2'));
    first.record(HEAD, Buffer.from('head v3'));
    first.record(DIRECTORY, Buffer.from('dir'));
    first.record(DIRECTORY, Buffer.from('dir 2'));
    first.record(DIRECTORY, Buffer.alloc(0));
    await first.settled();
    expect(first.bytes).toBe('head v3'.length + 'head v2'.length + 'part 0'.length);

    const second = mirror();
    const loaded = await second.load();
    expect(loaded.unreadable).toBe(0);
    expect(loaded.messages.map((m) => [m.topic, m.payload.toString(), m.previous]).sort()).toEqual([
      [HEAD, 'head v2', true],
      [HEAD, 'head v3', false],
      [PART, 'part 0', false],
    ]);
    expect(second.bytes).toBe(first.bytes);
    expect(errors).toEqual([]);
    // Only the owner reads the copies (the directory key is in a directory head).
    expect((await stat(mirrorFile(dir, HEAD))).mode & 0o777).toBe(0o600);
  });

  it('does not write a payload equal to the copy again (retained documents come again at every reconnect)', async () => {
    const m = mirror();
    await m.load();
    m.record(HEAD, Buffer.from('same'));
    await m.settled();
    const file = mirrorFile(dir, HEAD);
    // Changed behind its back: a second write of the same payload would restore 'same'.
    await writeFile(file, 'edited');
    m.record(HEAD, Buffer.from('same'));
    await m.settled();
    expect(await readFile(file, 'utf8')).toBe('edited');
    m.record(HEAD, Buffer.from('new'));
    await m.settled();
    expect(await readFile(file, 'utf8')).toBe('new');
  });

  it('copies no topic past its byte bound, and counts it', async () => {
    const m = mirror(10);
    await m.load();
    m.record(HEAD, Buffer.from('123456'));
    m.record(PART, Buffer.from('12345'));
    // A new payload keeps the last one as the previous: 6 + 4 fit in 10, 6 + 5 do not.
    m.record(HEAD, Buffer.from('12345'));
    await m.settled();
    expect(m.skipped).toBe(2);
    expect(m.bytes).toBe(6);
    m.record(HEAD, Buffer.from('1234'));
    await m.settled();
    expect(m.bytes).toBe(10);
    // The one before goes when another comes: 4 + 3.
    m.record(HEAD, Buffer.from('123'));
    await m.settled();
    expect(m.bytes).toBe(7);
    expect((await mirror(10).load()).messages.map((x) => [x.topic, x.payload.toString(), x.previous])).toEqual([
      [HEAD, '123', false],
      [HEAD, '1234', true],
    ]);
  });

  it('charges each file its overhead, so many tiny payloads are bounded in files too', async () => {
    const m = mirror(3 * FILE_OVERHEAD_BYTES + 10, FILE_OVERHEAD_BYTES);
    await m.load();
    for (let i = 0; i < 5; i++) m.record(`directory/tok-${i}`, Buffer.from('x'));
    await m.settled();
    expect(m.skipped).toBe(2);
    expect(await readdir(dir)).toHaveLength(3);
    expect(m.bytes).toBe(3 * (FILE_OVERHEAD_BYTES + 1));
  });

  it('removes files that are not copies (temporary leftovers, foreign names) and counts the foreign ones', async () => {
    const m = mirror();
    await m.load();
    m.record(HEAD, Buffer.from('kept'));
    await m.settled();
    await writeFile(join(dir, 'not a topic!'), 'x');
    await writeFile(`${mirrorFile(dir, PART)}.tmp`, 'half');
    // base64url of a topic written otherwise (padding) is not a name the mirror makes.
    await writeFile(join(dir, `${Buffer.from(PART).toString('base64url')}==`), 'x');
    const loaded = await mirror().load();
    expect(loaded.messages.map((x) => [x.topic, x.payload.toString()])).toEqual([[HEAD, 'kept']]);
    expect(loaded.unreadable).toBe(2);
    expect(await readdir(dir)).toEqual([Buffer.from(HEAD).toString('base64url')]);
  });

  it('a previous payload left alone by a kill between the two renames of a write is the last one', async () => {
    const m = mirror();
    await m.load();
    m.record(HEAD, Buffer.from('v1'));
    await m.settled();
    // As after rename(file → .prev) and before the new file: only .prev is there.
    const file = mirrorFile(dir, HEAD);
    await writeFile(`${file}.prev`, await readFile(file));
    await rm(file);
    const loaded = await mirror().load();
    expect(loaded.messages.map((x) => [x.topic, x.payload.toString(), x.previous])).toEqual([[HEAD, 'v1', false]]);
    expect(await readdir(dir)).toEqual([Buffer.from(HEAD).toString('base64url')]);
  });

  it('reports a write that failed and writes the topic again with its next message', async () => {
    const m = mirror();
    await m.load();
    // The directory is gone: the write fails.
    await rm(dir, { recursive: true });
    m.record(HEAD, Buffer.from('v1'));
    await m.settled();
    expect(errors).toHaveLength(1);
    expect(m.bytes).toBe(0);
    await mirror().load(); // makes the directory again
    m.record(HEAD, Buffer.from('v1'));
    await m.settled();
    expect(await readFile(mirrorFile(dir, HEAD), 'utf8')).toBe('v1');
  });
});
