import Database from 'better-sqlite3';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createIdFactory } from '../../ids.js';
import { SqliteContext, limitClause } from './context.js';

describe('limitClause', () => {
  it('writes the page size into the SQL', () => {
    expect(limitClause(51)).toBe('LIMIT 51');
    expect(limitClause(0)).toBe('LIMIT 0');
  });

  it('refuses anything but a non-negative safe integer, so nothing but a number reaches the SQL', () => {
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, '5; DROP TABLE x' as unknown as number]) {
      expect(() => limitClause(bad), String(bad)).toThrow(RangeError);
    }
  });

  it('no statement of the SQLite store binds its LIMIT (SQLite re-prepares such a statement on every run)', () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const sources = readdirSync(here).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));
    expect(sources.length).toBeGreaterThan(10);
    const offenders = sources.filter((f) => /\bLIMIT\s+\?/.test(readFileSync(join(here, f), 'utf8')));
    expect(offenders).toEqual([]);
  });
});

describe('SqliteContext statement cache', () => {
  let db: Database.Database;
  let ctx: SqliteContext;
  beforeEach(() => {
    db = new Database(':memory:');
    db.exec('CREATE TABLE tenants (id TEXT PRIMARY KEY, policy_version INTEGER); CREATE TABLE t (id TEXT PRIMARY KEY)');
    ctx = new SqliteContext(db, Date.now, createIdFactory(), {});
  });
  afterEach(() => db.close());

  it('prepares a shape once and hands back the same statement', () => {
    const a = ctx.stmt(`SELECT id FROM t ORDER BY id ${limitClause(10)}`);
    expect(ctx.stmt(`SELECT id FROM t ORDER BY id ${limitClause(10)}`)).toBe(a);
    expect(ctx.cachedStatements).toBe(1);
  });

  it('stays bounded when a client asks for every page size, dropping the least recently used', () => {
    const hot = ctx.stmt(`SELECT id FROM t ORDER BY id ${limitClause(50)}`);
    const cold = ctx.stmt(`SELECT id FROM t ORDER BY id DESC ${limitClause(50)}`);
    for (let n = 1; n <= 2_000; n++) {
      ctx.stmt(`SELECT id FROM t WHERE id > 'a' ORDER BY id ${limitClause(n)}`);
      if (n % 100 === 0) expect(ctx.stmt(`SELECT id FROM t ORDER BY id ${limitClause(50)}`)).toBe(hot);
    }
    expect(ctx.cachedStatements).toBeLessThanOrEqual(512);
    expect(ctx.stmt(`SELECT id FROM t ORDER BY id ${limitClause(50)}`)).toBe(hot);
    // Dropped long ago: prepared again, and it still runs.
    const again = ctx.stmt<[], { id: string }>(`SELECT id FROM t ORDER BY id DESC ${limitClause(50)}`);
    expect(again).not.toBe(cold);
    db.prepare("INSERT INTO t VALUES ('x')").run();
    expect(again.all()).toEqual([{ id: 'x' }]);
  });

  it('rows() gives the objects better-sqlite3 would: every column by name, NULLs, a later column of the same name winning', () => {
    db.exec("CREATE TABLE u (id TEXT PRIMARY KEY, n INTEGER, note TEXT); INSERT INTO u VALUES ('a', 1, NULL), ('b', 2, 'x'), ('c', 3, 'y')");
    for (const sql of [
      `SELECT id, n, note FROM u ORDER BY id ${limitClause(2)}`,
      `SELECT id, n, note, n * 10 AS __sort_key FROM u WHERE id > ? ORDER BY id ${limitClause(5)}`,
      `SELECT u.id, u.n, v.id FROM u JOIN u AS v ON v.n = u.n + 1 ORDER BY u.id ${limitClause(5)}`,
    ]) {
      const params = sql.includes('?') ? ['a'] : [];
      const theirs = db.prepare(sql).all(...params);
      expect(ctx.rows(sql, params)).toEqual(theirs);
      // Twice: the cached raw statement and its column names serve again.
      expect(ctx.rows(sql, params)).toEqual(theirs);
    }
    // A rows-mode statement does not turn the same SQL's `stmt` statement raw.
    const sql = `SELECT id, n, note FROM u ORDER BY id ${limitClause(2)}`;
    expect(ctx.stmt(sql).all()).toEqual([{ id: 'a', n: 1, note: null }, { id: 'b', n: 2, note: 'x' }]);
  });
});

describe('SqliteContext writes while another connection holds the write lock', () => {
  let dir: string;
  let db: Database.Database;
  let other: Database.Database;
  let ctx: SqliteContext;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'edgeplane-context-'));
    const file = join(dir, 'store.db');
    // A short busy timeout stands in for the store's 5 s: the first refusal waits it out.
    db = new Database(file, { timeout: 50 });
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE tenants (id TEXT PRIMARY KEY, policy_version INTEGER); CREATE TABLE t (id TEXT PRIMARY KEY)');
    ctx = new SqliteContext(db, Date.now, createIdFactory(), {});
    other = new Database(file);
  });
  afterEach(() => {
    if (other.inTransaction) other.exec('ROLLBACK');
    other.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const insert = (id: string) => ctx.write(() => db.prepare('INSERT INTO t (id) VALUES (?)').run(id));
  const timeout = () => db.pragma('busy_timeout', { simple: true });

  it('stops waiting once a write has waited out the timeout, refuses writes at once, and waits again after the next success', () => {
    insert('before');
    expect(timeout()).toBe(50);
    other.exec('BEGIN IMMEDIATE');
    other.prepare('INSERT INTO t (id) VALUES (?)').run('theirs');
    expect(() => insert('a')).toThrow(expect.objectContaining({ code: 'SQLITE_BUSY' }));
    // Later writes do not wait for a lock known to be held: refused at once, the same way.
    expect(ctx.failingFast).toBe(true);
    expect(timeout()).toBe(0);
    expect(() => insert('b')).toThrow(expect.objectContaining({ code: 'SQLITE_BUSY' }));
    // Reads go on meanwhile (WAL).
    expect(db.prepare('SELECT id FROM t ORDER BY id').pluck().all()).toEqual(['before']);
    other.exec('COMMIT');
    insert('c');
    expect(ctx.failingFast).toBe(false);
    expect(timeout()).toBe(50);
    // Nothing refused was half-written.
    expect(db.prepare('SELECT id FROM t ORDER BY id').pluck().all()).toEqual(['before', 'c', 'theirs']);
  });

  it('a write that fails for another reason leaves the timeout alone', () => {
    insert('dup');
    expect(() => insert('dup')).toThrow(expect.objectContaining({ code: 'SQLITE_CONSTRAINT_PRIMARYKEY' }));
    expect(ctx.failingFast).toBe(false);
    expect(timeout()).toBe(50);
  });
});
