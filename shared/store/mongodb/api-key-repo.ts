/**
 * Tenant API keys. Only the key's sha256 is stored, and it never leaves the store: records are
 * built without it; authentication looks keys up by it instead.
 */
import type { ApiKey } from '../../domain.js';
import type { Store } from '../port.js';
import { conflict } from '../rules/errors.js';
import { C, type ApiKeyDoc } from './collections.js';
import { insertOrConflict, strip, type MongoContext } from './context.js';
import { MongoEntity, type TenantRefs } from './entity.js';

const toApiKey = (d: ApiKeyDoc): ApiKey => strip(d, 'secret_hash');

export function createApiKeyRepo(ctx: MongoContext, refs: TenantRefs): Store['apiKeys'] {
  const table = new MongoEntity<ApiKeyDoc, ApiKey>(ctx, C.apiKeys, 'tenant', [], toApiKey);
  return {
    async create(input) {
      return ctx.write(async ({ session }) => {
        await refs.requireTenant(session, input.tenant_id);
        const key: ApiKey = {
          id: ctx.newId(),
          tenant_id: input.tenant_id,
          name: input.name,
          prefix: input.prefix,
          scopes: [...input.scopes],
          created_by: input.created_by,
          created_at: ctx.now(),
          last_used_at: null,
          revoked_at: null,
          expires_at: input.expires_at,
        };
        await insertOrConflict(
          () => table.coll.insertOne({ _id: key.id, ...key, secret_hash: input.secret_hash }, { session }),
          () => conflict('secret_hash', 'key already exists'),
        );
        return key;
      });
    },
    get: (tenantId, id) => table.get(tenantId, id),
    list: (tenantId, opts) => table.list({ tenant_id: tenantId }, opts),
    // `revoked_at: null` keeps the first revocation time: revoking twice is a no-op, not a rewrite.
    async revoke(tenantId, id, now) {
      return (await table.coll.updateOne({ _id: id, tenant_id: tenantId, revoked_at: null }, { $set: { revoked_at: now } })).matchedCount > 0;
    },
    async findByHash(secretHash) {
      const doc = await table.coll.findOne({ secret_hash: secretHash });
      return doc ? toApiKey(doc) : null;
    },
    async touch(id, now) {
      await table.coll.updateOne({ _id: id }, { $set: { last_used_at: now } });
    },
  };
}
