import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Checkpointer } from './checkpointer.js';

// better-sqlite3 with every prepared statement logged to EDGEPLANE_TEST_PREPARE_LOG.
const COUNTING_DRIVER = fileURLToPath(new URL('./fixtures/counting-driver.cjs', import.meta.url));
// better-sqlite3 that throws when opening a database: the worker dies as it starts.
const FAILING_DRIVER = fileURLToPath(new URL('./fixtures/failing-driver.cjs', import.meta.url));
// better-sqlite3 whose statements throw while EDGEPLANE_TEST_CHECKPOINT_FAIL names a file that exists.
const TOGGLING_DRIVER = fileURLToPath(new URL('./fixtures/toggling-driver.cjs', import.meta.url));

describe('Checkpointer', () => {
  let dir: string;
  let db: Database.Database;
  let checkpointer: Checkpointer | null;
  let prepareLog: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeplane-checkpointer-'));
    prepareLog = join(dir, 'prepared.log');
    // The worker copies the environment when it starts.
    process.env.EDGEPLANE_TEST_PREPARE_LOG = prepareLog;
    db = new Database(join(dir, 'store.db'));
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t (x TEXT NOT NULL)');
    // The timer never fires during a test: checkpoints run when asked.
    checkpointer = new Checkpointer(db, { file: join(dir, 'store.db'), intervalMs: 3_600_000, busyTimeoutMs: 1_000, driver: COUNTING_DRIVER });
  });
  afterEach(async () => {
    await checkpointer?.stop();
    db.close();
    delete process.env.EDGEPLANE_TEST_PREPARE_LOG;
    await rm(dir, { recursive: true, force: true });
  });

  it('copies every WAL frame the main connection committed into the database file', async () => {
    const insert = db.prepare('INSERT INTO t (x) VALUES (?)');
    for (let i = 0; i < 200; i++) insert.run('x'.repeat(500));
    const r = await checkpointer!.checkpoint();
    expect(r.busy).toBe(0);
    expect(r.log).toBeGreaterThan(0);
    expect(r.checkpointed).toBe(r.log);
    // The main connection's own threshold is the safety net's, far above these frames.
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(10_000);
  });

  it('prepares its checkpoint statement once, not at every checkpoint', async () => {
    // better-sqlite3's pragma() prepares a statement at each call, and the native memory behind
    // each (1–2 KB) lives until the worker's GC finalizes it: ~11 MB of RSS in an idle worker.
    const insert = db.prepare('INSERT INTO t (x) VALUES (?)');
    for (let i = 0; i < 1_000; i++) {
      if (i % 100 === 0) insert.run(String(i));
      await checkpointer!.checkpoint();
    }
    const prepared = readFileSync(prepareLog, 'utf8').trim().split('\n');
    expect(prepared.filter((sql) => /wal_checkpoint/i.test(sql))).toHaveLength(1);
    expect(prepared.length).toBeLessThanOrEqual(2);
  });

  it('refuses a checkpoint once stopped, and stops with one pending', async () => {
    const pending = checkpointer!.checkpoint();
    await checkpointer!.stop();
    await expect(pending).resolves.toMatchObject({ busy: 0 });
    await expect(checkpointer!.checkpoint()).rejects.toThrow(/stopped/);
    checkpointer = null;
  });

  it('refuses at once after its worker died on its own, and hands checkpoints back to SQLite', async () => {
    await checkpointer!.stop();
    checkpointer = new Checkpointer(db, { file: join(dir, 'store.db'), intervalMs: 3_600_000, busyTimeoutMs: 1_000, driver: FAILING_DRIVER });
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(10_000);
    // Asked before or after the worker is gone, the caller is answered either way.
    await expect(checkpointer.checkpoint()).rejects.toThrow(/stopped/);
    // Without a worker the main connection checkpoints as SQLite does by default: the WAL stays bounded.
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    // Posting to the dead worker would wait forever: this must reject, not hang.
    await expect(checkpointer.checkpoint()).rejects.toThrow(/stopped/);
  });

  it('hands checkpoints back to SQLite while they fail round after round, and takes them again once one succeeds', async () => {
    await checkpointer!.stop();
    const flag = join(dir, 'fail');
    writeFileSync(flag, '');
    process.env.EDGEPLANE_TEST_CHECKPOINT_FAIL = flag;
    const health: Array<{ working: boolean; error?: string }> = [];
    let next: (() => void) | null = null;
    const changed = () => new Promise<void>((r) => (next = r));
    let failing = changed();
    // Real rounds every 5 ms in the worker thread (fake timers do not reach it); 3 failures in a row.
    checkpointer = new Checkpointer(db, {
      file: join(dir, 'store.db'),
      intervalMs: 5,
      busyTimeoutMs: 1_000,
      driver: TOGGLING_DRIVER,
      failuresToFallBack: 3,
      onHealth: (working, error) => {
        health.push({ working, ...(error !== undefined && { error }) });
        next?.();
      },
    });
    try {
      await failing;
      expect(health).toEqual([{ working: false, error: expect.stringMatching(/SQLITE_FULL/) }]);
      expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
      failing = changed();
      rmSync(flag);
      await failing;
      expect(health.at(-1)).toEqual({ working: true });
      expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(10_000);
    } finally {
      delete process.env.EDGEPLANE_TEST_CHECKPOINT_FAIL;
    }
  });
});
