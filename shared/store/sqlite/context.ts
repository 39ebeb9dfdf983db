/**
 * What every SQLite repository shares: the open connection, the injected clock and id factory,
 * a statement cache, and the write path that bumps policy versions and notifies after commit.
 */
import Database from 'better-sqlite3';
import type { IdFactory } from '../../ids.js';
import type { ListOptions, Page, StoreHooks } from '../port.js';
import { keyset } from './cursor.js';
import { conflict } from '../rules/errors.js';
import { isStoreBusy } from '../store-faults.js';
import { changeScope, touchList, type PolicyTouch } from '../rules/policy-history.js';
import type { SqliteHistory, VersionMeta } from './policy-history.js';

export type Db = Database.Database;
export type Stmt<P extends unknown[], R = unknown> = Database.Statement<P, R>;

export interface WriteScope {
  /**
   * Bumps the tenant's policy version inside the running transaction; listeners hear after commit.
   * `touch` names what changed (one scope or several, for a bulk write), so the version's history
   * re-examines only that (default: all).
   */
  bumpPolicy(tenantId: string, touch?: PolicyTouch | readonly PolicyTouch[], meta?: VersionMeta): void;
  /** Records the tenant's current version as the start of its history (a new tenant). */
  recordVersion(tenantId: string): void;
}

/**
 * Statements kept prepared per connection (`SqliteContext.stmt`). Shapes come from a fixed
 * vocabulary, but a page's LIMIT is part of its SQL (`limitClause`), so a client choosing every
 * page size could otherwise make the cache grow with its requests: least recently used go first.
 * At most ~7.4 MB per connection (512 prepared usage-list statements measured 14.8 KB each).
 */
const STATEMENT_CACHE_MAX = 512;
/** Prefix of a rows-mode cache key: no SQL text starts with a NUL. */
const RAW_KEY = '\u0000rows ';

/**
 * `LIMIT n` with the number written into the SQL. SQLite re-prepares a statement on every run
 * whose LIMIT is a bound parameter (the planner reads the bound value: `sqlite3ExprIsInteger`
 * marks it so a new binding expires the plan), which cost a 51-row list query ~12 µs of parsing
 * and planning per request against ~1.3 µs to run it (measured on the commands list, SQLite
 * 3.53). `n` is the page size the caller already clamped, or a constant. (OFFSET is not read by
 * the planner: a bound OFFSET does not re-prepare.)
 */
export function limitClause(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`LIMIT must be a non-negative integer, got ${n}`);
  return `LIMIT ${n}`;
}

/** A list filter: undefined is skipped, null means IS NULL. */
export type Filters = Record<string, string | null | undefined>;

interface PolicyBump {
  tenantId: string;
  version: number;
  touches: readonly PolicyTouch[];
  meta: VersionMeta;
}

export class SqliteContext {
  /** Keyed by SQL; rows-mode entries (`rows`) by RAW_KEY + SQL, with their column names. */
  private readonly statements = new Map<string, { stmt: Stmt<unknown[]>; names: string[] | null }>();
  private readonly runInTransaction: Database.Transaction<(fn: () => unknown) => unknown>;
  private readonly bumpVersion: Stmt<[string], { policy_version: number }>;
  /** The connection's configured busy timeout, read at construction. */
  private readonly busyTimeoutMs: number;
  /** Set while another connection is known to hold the write lock past the busy timeout. */
  private lockHeldElsewhere = false;

  constructor(
    readonly db: Db,
    readonly now: () => number,
    readonly newId: IdFactory,
    private readonly hooks: StoreHooks,
    /** Keeps every version's content; absent only for schema-level tests of older migrations. */
    private readonly history: SqliteHistory | null = null,
  ) {
    this.runInTransaction = db.transaction((fn: () => unknown) => fn());
    this.busyTimeoutMs = db.pragma('busy_timeout', { simple: true }) as number;
    this.bumpVersion = db.prepare(
      'UPDATE tenants SET policy_version = policy_version + 1 WHERE id = ? RETURNING policy_version',
    );
  }

  /** How many statements `stmt` and `rows` hold prepared (bounded by STATEMENT_CACHE_MAX). */
  get cachedStatements(): number {
    return this.statements.size;
  }

  /**
   * For SQL assembled from a fixed vocabulary (filters, patch columns, a clamped LIMIT): prepared
   * once per shape, the least recently used of more than STATEMENT_CACHE_MAX dropped (a dropped
   * statement is finalized when nothing holds it any more).
   */
  stmt<P extends unknown[], R = unknown>(sql: string): Stmt<P, R> {
    return this.cached(sql, false).stmt as unknown as Stmt<P, R>;
  }

  /**
   * The rows of a SELECT assembled like `stmt`'s, as plain objects keyed by column name. Built here
   * from better-sqlite3's raw arrays, every row of a statement with the same keys in the same
   * order, instead of by better-sqlite3, which sets each property of each row through V8's slow
   * path: a 51-row page of usage (19 columns) took 165–181 µs that way and 121–125 µs this way
   * (measured on a copy of a bench database). As there, a later column of the same name wins.
   */
  rows<T>(sql: string, params: readonly unknown[]): T[] {
    const { stmt, names } = this.cached(sql, true);
    const raw = stmt.all(...params) as unknown[][];
    const keys = names!;
    const width = keys.length;
    const out = new Array<T>(raw.length);
    for (let j = 0; j < raw.length; j++) {
      const values = raw[j]!;
      const row: Record<string, unknown> = {};
      for (let i = 0; i < width; i++) row[keys[i]!] = values[i];
      out[j] = row as T;
    }
    return out;
  }

  private cached(sql: string, raw: boolean): { stmt: Stmt<unknown[]>; names: string[] | null } {
    const statements = this.statements;
    const key = raw ? RAW_KEY + sql : sql;
    let entry = statements.get(key);
    if (entry) {
      // Most recently used last: Map keeps insertion order.
      statements.delete(key);
    } else {
      const stmt = this.db.prepare<unknown[]>(sql);
      entry = raw ? { stmt: stmt.raw(true), names: stmt.columns().map((c) => c.name) } : { stmt, names: null };
      if (statements.size >= STATEMENT_CACHE_MAX) statements.delete(statements.keys().next().value!);
    }
    statements.set(key, entry);
    return entry;
  }

  /**
   * Runs `fn` in one transaction. Policy listeners are called only after COMMIT, so they never
   * observe a version whose data could still roll back.
   */
  write<T>(fn: (scope: WriteScope) => T): T {
    const bumps: PolicyBump[] = [];
    const baselines: string[] = [];
    const scope: WriteScope = {
      bumpPolicy: (tenantId, touch, meta = {}) => {
        const row = this.bumpVersion.get(tenantId);
        if (row) bumps.push({ tenantId, version: row.policy_version, touches: touchList(touch), meta });
      },
      recordVersion: (tenantId) => baselines.push(tenantId),
    };
    // IMMEDIATE: take the write lock up front. Several processes may share the file (distributed
    // mode on one host); a deferred transaction that read before another process committed would
    // fail with SQLITE_BUSY_SNAPSHOT instead of waiting out busy_timeout.
    let result: T;
    try {
      result = this.runInTransaction.immediate(() => {
        const out = fn(scope);
        // After every write of the transaction, before COMMIT: the version's content is exactly
        // what commits with it.
        this.recordHistory(bumps, baselines);
        return out;
      }) as T;
    } catch (err) {
      if (isStoreBusy(err)) this.lockIsHeld(true);
      throw err;
    }
    this.lockIsHeld(false);
    for (const bump of bumps) this.notify(bump);
    return result;
  }

  /**
   * Once a write has waited out the whole busy timeout, another connection holds the write lock
   * (a long write, or a process stopped mid-transaction): every later write would block this
   * process's event loop (better-sqlite3 is synchronous) for the same timeout, each API request
   * and each tower batch 5 s in turn, and the process would stop answering anything, health
   * checks and MQTT keep-alives included. So from then on writes do not wait: each is refused at
   * once with SQLITE_BUSY (the caller's 503 or unacknowledged publish, as after the first), until
   * one gets the lock, which restores the timeout.
   */
  private lockIsHeld(held: boolean): void {
    if (held === this.lockHeldElsewhere) return;
    this.lockHeldElsewhere = held;
    this.db.pragma(`busy_timeout = ${held ? 0 : this.busyTimeoutMs}`);
  }

  /** Whether writes currently fail fast because another connection held the lock (the `store_busy` gauge says so to operators). */
  get failingFast(): boolean {
    return this.lockHeldElsewhere;
  }

  private recordHistory(bumps: readonly PolicyBump[], baselines: readonly string[]): void {
    const history = this.history;
    if (history === null) return;
    const at = this.now();
    for (const tenantId of baselines) history.baseline(tenantId, at);
    const byTenant = new Map<string, PolicyBump[]>();
    for (const b of bumps) {
      let list = byTenant.get(b.tenantId);
      if (!list) byTenant.set(b.tenantId, (list = []));
      list.push(b);
    }
    for (const [tenantId, list] of byTenant) {
      // Several bumps of one tenant in one transaction: the last version carries the changes.
      const last = list[list.length - 1]!;
      for (const b of list.slice(0, -1)) history.versionRow(tenantId, b.version, at, 0, '[]', b.meta);
      history.record(tenantId, last.version, list.flatMap((b) => b.touches), at, last.meta);
    }
  }

  /** A read that spans several statements sees one consistent snapshot. */
  read<T>(fn: () => T): T {
    return this.runInTransaction(fn) as T;
  }

  private notify(bump: PolicyBump): void {
    try {
      this.hooks.onPolicyChanged?.(bump.tenantId, bump.version, changeScope(bump.touches));
    } catch {
      // The write is committed; a failing listener must not make the caller believe it was not
      // (a retry would then duplicate it). Listeners own their error reporting.
    }
  }

  /**
   * Keyset page over `table`. Column and table names come from the repositories' constants, never
   * from input; only values are bound.
   */
  listPage<T extends { id: string }>(
    table: string,
    columns: string,
    filters: Filters,
    opts: ListOptions | undefined,
    order: 'asc' | 'desc',
    /** Conditions beyond equality (time ranges), over constant columns, with bound values. */
    extra: { clauses: string[]; params: unknown[] } = { clauses: [], params: [] },
  ): Page<T> {
    const plan = keyset(opts, table, order);
    const where: string[] = [...extra.clauses];
    const params: unknown[] = [...extra.params];
    for (const [column, value] of Object.entries(filters)) {
      if (value === undefined) continue;
      if (value === null) {
        where.push(`${column} IS NULL`);
      } else {
        where.push(`${column} = ?`);
        params.push(value);
      }
    }
    if (plan.where !== null) {
      where.push(plan.where);
      params.push(...plan.params);
    }
    const clause = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
    const sql = `SELECT ${columns}${plan.select} FROM ${table} ${clause} ORDER BY ${plan.orderBy} ${limitClause(plan.limit + 1)}`;
    return plan.page(this.rows<T>(sql, params));
  }
}

export function sqliteErrorCode(err: unknown): string | null {
  return err instanceof Database.SqliteError ? err.code : null;
}

export function isUniqueViolation(err: unknown): boolean {
  const code = sqliteErrorCode(err);
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** Runs an insert, turning a UNIQUE/PRIMARY KEY violation into CONFLICT naming the field. */
export function insertOrConflict(run: () => void, field: string, message: string): void {
  try {
    run();
  } catch (err) {
    if (isUniqueViolation(err)) throw conflict(field, message);
    throw err;
  }
}

export { notFound } from '../rules/errors.js';
