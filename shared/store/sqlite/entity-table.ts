/**
 * Row-level operations shared by every entity table. Tenant-scoped tables put `tenant_id` in
 * every WHERE clause, so a wrong tenant id reads as "no such row" rather than leaking it.
 */
import type { ListOptions, Page } from '../port.js';
import type { Filters, SqliteContext, Stmt } from './context.js';

type Scope = 'tenant' | 'platform';

export class EntityTable<T extends { id: string; updated_at?: number }> {
  readonly columnList: string;
  private readonly getOne: Stmt<string[], T>;
  private readonly insertRow: Stmt<[T]>;
  private readonly deleteOne: Stmt<string[]>;
  private readonly keyWhere: string;

  constructor(
    private readonly ctx: SqliteContext,
    readonly table: string,
    private readonly columns: ReadonlyArray<keyof T & string>,
    private readonly scope: Scope,
    /** Columns a patch may touch; anything else in the patch object is ignored. */
    private readonly mutable: ReadonlyArray<keyof T & string>,
  ) {
    this.columnList = columns.join(', ');
    const db = ctx.db;
    this.keyWhere = scope === 'tenant' ? 'tenant_id = ? AND id = ?' : 'id = ?';
    this.getOne = db.prepare(`SELECT ${this.columnList} FROM ${table} WHERE ${this.keyWhere}`);
    this.insertRow = db.prepare(
      `INSERT INTO ${table} (${this.columnList}) VALUES (${columns.map((c) => `@${c}`).join(', ')})`,
    );
    this.deleteOne = db.prepare(`DELETE FROM ${table} WHERE ${this.keyWhere}`);
  }

  private key(tenantId: string | null, id: string): string[] {
    return this.scope === 'tenant' ? [tenantId ?? '', id] : [id];
  }

  /** `tenantId` is ignored for platform tables. */
  get(tenantId: string | null, id: string): T | null {
    return this.getOne.get(...this.key(tenantId, id)) ?? null;
  }

  exists(tenantId: string | null, id: string): boolean {
    return this.get(tenantId, id) !== null;
  }

  insert(row: T): T {
    this.insertRow.run(row);
    return row;
  }

  /** Applies the defined, mutable fields of `patch` and stamps updated_at; null when no such row. */
  update(tenantId: string | null, id: string, patch: Partial<T>): T | null {
    const sets: string[] = [];
    const values: unknown[] = [];
    const key = this.key(tenantId, id);
    for (const column of this.mutable) {
      const value = patch[column];
      if (value === undefined) continue;
      sets.push(`${column} = ?`);
      values.push(value);
    }
    sets.push('updated_at = ?');
    values.push(this.ctx.now());
    const sql = `UPDATE ${this.table} SET ${sets.join(', ')} WHERE ${this.keyWhere} RETURNING ${this.columnList}`;
    return this.ctx.stmt<unknown[], T>(sql).get(...values, ...key) ?? null;
  }

  delete(tenantId: string | null, id: string): boolean {
    return this.deleteOne.run(...this.key(tenantId, id)).changes > 0;
  }

  list(filters: Filters, opts: ListOptions | undefined, order: 'asc' | 'desc' = 'asc'): Page<T> {
    return this.ctx.listPage<T>(this.table, this.columnList, filters, opts, order);
  }
}
