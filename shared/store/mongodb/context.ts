/**
 * What every MongoDB repository shares: the database, the injected clock and id factory, the
 * transactional write path that bumps policy versions and notifies after commit, and keyset pages.
 */
import type { IdFactory } from '../../ids.js';
import type { ListOptions, Page, StoreHooks } from '../port.js';
import { finishPage, planPage, sortableOf, sortValue } from '../rules/pagination.js';
import { changeScope, touchList, type PolicyTouch } from '../rules/policy-history.js';
import { C, type CollectionName, type TenantDoc } from './collections.js';
import {
  isDuplicateKeyError,
  type CollectionLike,
  type Document,
  type Filter,
  type MongoDbLike,
  type SessionLike,
  type Sort,
  type WithId,
} from './db-like.js';
import type { MongoHistory, VersionMeta } from './policy-history.js';

export interface WriteScope {
  session: SessionLike;
  /**
   * Bumps the tenant's policy version inside the running transaction; listeners hear after commit.
   * `touch` names what changed (one scope or several, for a bulk write), so the version's history
   * re-examines only that (default: all).
   */
  bumpPolicy(tenantId: string, touch?: PolicyTouch | readonly PolicyTouch[], meta?: VersionMeta): Promise<void>;
  /** Records the tenant's current version as the start of its history (a new tenant). */
  recordVersion(tenantId: string): void;
}

/**
 * Thrown inside a transaction when an insert that was checked first still hits a duplicate key:
 * a concurrent writer committed the same key. The server has aborted the transaction by then
 * (a write error aborts a MongoDB transaction), so the whole write is run again and the check
 * then sees the other writer's row.
 */
export class ConcurrentInsert extends Error {
  constructor() {
    super('a concurrent writer inserted the same key');
  }
}

/** Attempts of a write that keeps meeting ConcurrentInsert; each retry sees more committed rows. */
const MAX_INSERT_RACES = 5;

interface PolicyBump {
  tenantId: string;
  version: number;
  touches: readonly PolicyTouch[];
  meta: VersionMeta;
}

export class MongoContext {
  constructor(
    readonly db: MongoDbLike,
    readonly now: () => number,
    readonly newId: IdFactory,
    private readonly hooks: StoreHooks,
    /** Keeps every version's content (rules/policy-history.ts). */
    private readonly history: MongoHistory | null = null,
  ) {}

  coll<T extends Document>(name: CollectionName): CollectionLike<T> {
    return this.db.collection<T>(name);
  }

  /**
   * Runs `fn` in one transaction (withTransaction retries it on transient errors such as write
   * conflicts, so `fn` must be safe to run again). Policy listeners are called only after the
   * commit, so they never observe a version whose data could still roll back.
   */
  async write<T>(fn: (scope: WriteScope) => Promise<T>): Promise<T> {
    const tenants = this.coll<TenantDoc>(C.tenants);
    for (let attempt = 1; ; attempt++) {
      const session = this.db.client.startSession();
      let bumps: PolicyBump[] = [];
      try {
        const result = await session.withTransaction(async (s) => {
          bumps = [];
          const baselines: string[] = [];
          const scope: WriteScope = {
            session: s,
            bumpPolicy: async (tenantId, touch, meta = {}) => {
              const row = await tenants.findOneAndUpdate(
                { _id: tenantId },
                { $inc: { policy_version: 1 } },
                { session: s, returnDocument: 'after' },
              );
              if (row) bumps.push({ tenantId, version: row.policy_version, touches: touchList(touch), meta });
            },
            recordVersion: (tenantId) => baselines.push(tenantId),
          };
          const out = await fn(scope);
          // After every write of the transaction, before the commit: the version's content is
          // exactly what commits with it.
          await this.recordHistory(s, bumps, baselines);
          return out;
        });
        for (const bump of bumps) this.notify(bump);
        return result;
      } catch (err) {
        if (err instanceof ConcurrentInsert && attempt < MAX_INSERT_RACES) continue;
        throw err;
      } finally {
        await session.endSession();
      }
    }
  }

  private async recordHistory(session: SessionLike, bumps: readonly PolicyBump[], baselines: readonly string[]): Promise<void> {
    const history = this.history;
    if (history === null) return;
    const at = this.now();
    for (const tenantId of baselines) await history.baseline(session, tenantId, at);
    const byTenant = new Map<string, PolicyBump[]>();
    for (const b of bumps) {
      let list = byTenant.get(b.tenantId);
      if (!list) byTenant.set(b.tenantId, (list = []));
      list.push(b);
    }
    for (const [tenantId, list] of byTenant) {
      // Several bumps of one tenant in one transaction: the last version carries the changes.
      const last = list[list.length - 1]!;
      for (const b of list.slice(0, -1)) await history.versionRow(session, tenantId, b.version, at, 0, [], b.meta);
      await history.record(session, tenantId, last.version, list.flatMap((b) => b.touches), at, last.meta);
    }
  }

  /** Several reads that must come from one snapshot (policy snapshot, dashboard). */
  async read<T>(fn: (session: SessionLike) => Promise<T>): Promise<T> {
    const session = this.db.client.startSession();
    try {
      return await session.withTransaction(fn);
    } finally {
      await session.endSession();
    }
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
   * One keyset page of `list` (a SORTABLE key) over `coll`, where `filter` selects the rows.
   * Without `sort` the order is `_id` in `order`; `keyOf` maps a record id to its `_id`.
   * Ranked sort fields (severity) are read from a stored `<field>_rank`. MongoDB orders null
   * below every value, as the port requires, and the keyset filter follows the same rule.
   */
  async listPage<D extends Document & { _id: string }, R extends { id: string }>(
    coll: CollectionLike<D>,
    filter: Filter<D>,
    opts: ListOptions | undefined,
    list: string,
    order: 'asc' | 'desc',
    toRecord: (doc: WithId<D>) => R,
    options: { keyOf?: (id: string) => string; session?: SessionLike } = {},
  ): Promise<Page<R>> {
    const keyOf = options.keyOf ?? ((id: string) => id);
    const plan = planPage(opts, sortableOf(list), order);
    let sort: Sort;
    let range: Document | null = null;
    if (plan.sort === null) {
      sort = { _id: plan.order === 'asc' ? 1 : -1 };
      if (plan.after !== null) range = { _id: { [plan.order === 'asc' ? '$gt' : '$lt']: keyOf(plan.after) } };
    } else {
      const { field, dir, spec } = plan.sort;
      const path = spec.rank ? `${field}_rank` : field;
      const d = dir === 'asc' ? 1 : -1;
      sort = { [path]: d, _id: d };
      if (plan.after !== null) range = keysetRange(path, dir, plan.after.v, keyOf(plan.after.id));
    }
    const query = (range === null ? filter : { $and: [filter, range] }) as Filter<D>;
    const rows = await coll.find(query, { sort, limit: plan.limit + 1, session: options.session }).toArray();
    const records = rows.map(toRecord);
    const sorted = plan.sort;
    return finishPage(plan, records, (r) =>
      sorted === null ? null : sortValue(sorted.spec, (r as Record<string, unknown>)[sorted.field]),
    );
  }
}

/** Rows after (v, key) in `dir`, NULL keys lowest (the same predicate as the SQLite adapter's). */
function keysetRange(path: string, dir: 'asc' | 'desc', v: string | number | null, key: string): Document {
  if (dir === 'asc') {
    return v === null
      ? { $or: [{ [path]: null, _id: { $gt: key } }, { [path]: { $ne: null } }] }
      : { $or: [{ [path]: { $gt: v } }, { [path]: v, _id: { $gt: key } }] };
  }
  return v === null
    ? { [path]: null, _id: { $lt: key } }
    : { $or: [{ [path]: { $lt: v } }, { [path]: v, _id: { $lt: key } }, { [path]: null }] };
}

/** Turns an insert's duplicate key into ConcurrentInsert (the caller checked first). */
export async function insertChecked(run: () => Promise<unknown>): Promise<void> {
  try {
    await run();
  } catch (err) {
    if (isDuplicateKeyError(err)) throw new ConcurrentInsert();
    throw err;
  }
}

/** Turns an insert's duplicate key into the port's CONFLICT naming the field. */
export async function insertOrConflict(run: () => Promise<unknown>, conflict: () => Error): Promise<void> {
  try {
    await run();
  } catch (err) {
    if (isDuplicateKeyError(err)) throw conflict();
    throw err;
  }
}

/**
 * Removes `_id`, the write guard every guarded row may carry, and the named internal fields:
 * what is left is the port's record.
 */
export function strip<D extends { _id: unknown }, K extends keyof D = never>(doc: D, ...hidden: K[]): Omit<D, '_id' | 'write_guard' | K> {
  const out: Record<string, unknown> = { ...doc };
  delete out['_id'];
  delete out['write_guard'];
  for (const key of hidden) delete out[key as string];
  return out as Omit<D, '_id' | 'write_guard' | K>;
}
