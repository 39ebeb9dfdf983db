/**
 * Document-level operations shared by the entity collections, and the tenant reference checks.
 * Tenant-scoped collections put `tenant_id` in every filter, so a wrong tenant id reads as
 * "no such row" rather than leaking it.
 */
import type { ListOptions, Page } from '../port.js';
import { notFound } from '../rules/errors.js';
import { C, type PolicyDoc, type RoleDoc, type TenantDoc, type UserDoc } from './collections.js';
import type { MongoContext } from './context.js';
import type { CollectionLike, Document, Filter, SessionLike, UpdateFilter, WithId } from './db-like.js';

type Scope = 'tenant' | 'platform';

export class MongoEntity<D extends Document & { _id: string }, R extends { id: string }> {
  readonly coll: CollectionLike<D>;

  constructor(
    private readonly ctx: MongoContext,
    name: (typeof C)[keyof typeof C],
    private readonly scope: Scope,
    /** Fields a patch may touch; anything else in the patch object is ignored. */
    private readonly mutable: ReadonlyArray<keyof R & string>,
    readonly toRecord: (doc: WithId<D>) => R,
    /** The SORTABLE list this collection answers (its sortable fields). */
    private readonly list_: string = name,
  ) {
    this.coll = ctx.coll<D>(name);
  }

  key(tenantId: string | null, id: string): Filter<D> {
    return (this.scope === 'tenant' ? { _id: id, tenant_id: tenantId } : { _id: id }) as Filter<D>;
  }

  /** `tenantId` is ignored for platform collections. */
  async get(tenantId: string | null, id: string, session?: SessionLike): Promise<R | null> {
    const doc = await this.coll.findOne(this.key(tenantId, id), { session });
    return doc ? this.toRecord(doc) : null;
  }

  /** Applies the defined, mutable fields of `patch` and stamps updated_at; null when no such row. */
  async update(tenantId: string | null, id: string, patch: Partial<R>, session?: SessionLike): Promise<R | null> {
    const set: Record<string, unknown> = {};
    for (const field of this.mutable) {
      const value = patch[field];
      if (value !== undefined) set[field] = value;
    }
    set['updated_at'] = this.ctx.now();
    const doc = await this.coll.findOneAndUpdate(this.key(tenantId, id), { $set: set } as UpdateFilter<D>, {
      session,
      returnDocument: 'after',
    });
    return doc ? this.toRecord(doc) : null;
  }

  async delete(tenantId: string | null, id: string, session?: SessionLike): Promise<boolean> {
    return (await this.coll.deleteOne(this.key(tenantId, id), { session })).deletedCount > 0;
  }

  async list(filter: Filter<D>, opts: ListOptions | undefined, order: 'asc' | 'desc' = 'asc'): Promise<Page<R>> {
    return this.ctx.listPage(this.coll, filter, opts, this.list_, order, this.toRecord);
  }
}

/**
 * Reference checks scoped to one tenant, inside the caller's transaction. They answer NOT_FOUND
 * naming the field, which is what the API returns to the caller.
 */
export class TenantRefs {
  constructor(private readonly ctx: MongoContext) {}

  /**
   * Also a write: bumping the tenant's write_guard makes this transaction conflict with a
   * concurrent deletion of the tenant, so nothing is created for a tenant that is going away
   * (MongoDB has no foreign keys; under snapshot isolation a plain read would not conflict).
   */
  async requireTenant(session: SessionLike, tenantId: string): Promise<void> {
    const res = await this.ctx
      .coll<TenantDoc>(C.tenants)
      .updateOne({ _id: tenantId }, { $inc: { write_guard: 1 } }, { session });
    if (res.matchedCount === 0) throw notFound('tenant_id', 'no such tenant');
  }

  async hasUser(session: SessionLike, tenantId: string, userId: string): Promise<boolean> {
    return (await this.ctx.coll<UserDoc>(C.users).findOne({ _id: userId, tenant_id: tenantId }, { session })) !== null;
  }

  async requireUser(session: SessionLike, tenantId: string, userId: string): Promise<void> {
    if (!(await this.hasUser(session, tenantId, userId))) throw notFound('user_id', 'no such user');
  }

  async requireRole(session: SessionLike, tenantId: string, roleId: string): Promise<void> {
    const found = await this.ctx.coll<RoleDoc>(C.roles).findOne({ _id: roleId, tenant_id: tenantId }, { session });
    if (!found) throw notFound('role_id', 'no such role');
  }

  async requirePolicy(session: SessionLike, tenantId: string, policyId: string): Promise<void> {
    const found = await this.ctx.coll<PolicyDoc>(C.policies).findOne({ _id: policyId, tenant_id: tenantId }, { session });
    if (!found) throw notFound('policy_id', 'no such policy');
  }
}
