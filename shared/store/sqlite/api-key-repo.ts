/**
 * Tenant API keys. Only the key's sha256 is stored, and it never leaves the store: every read
 * goes through API_KEY_COLUMNS, which leaves it out; authentication looks keys up by it instead.
 */
import type { ApiKey } from '../../domain.js';
import type { Store } from '../port.js';
import type { SqliteContext, Stmt } from './context.js';
import { insertOrConflict } from './context.js';
import { EntityTable } from './entity-table.js';
import type { TenantRefs } from './refs.js';

/** Deliberately without `secret_hash`. */
const API_KEY_COLUMNS = [
  'id',
  'tenant_id',
  'name',
  'prefix',
  'scopes',
  'created_by',
  'created_at',
  'last_used_at',
  'revoked_at',
  'expires_at',
] as const;

/** scopes is a JSON array on disk. */
type ApiKeyRow = Omit<ApiKey, 'scopes'> & { scopes: string };

const toApiKey = (row: ApiKeyRow): ApiKey => ({ ...row, scopes: JSON.parse(row.scopes) as string[] });

export function createApiKeyRepo(ctx: SqliteContext, refs: TenantRefs): Store['apiKeys'] {
  // No mutable columns: the only changes are revoke and touch, each with its own statement.
  const table = new EntityTable<ApiKeyRow>(ctx, 'api_keys', API_KEY_COLUMNS, 'tenant', []);
  const insert: Stmt<[ApiKeyRow & { secret_hash: string }]> = ctx.db.prepare(
    `INSERT INTO api_keys (${table.columnList}, secret_hash)
     VALUES (${API_KEY_COLUMNS.map((c) => `@${c}`).join(', ')}, @secret_hash)`,
  );
  const byHash: Stmt<[string], ApiKeyRow> = ctx.db.prepare(
    `SELECT ${table.columnList} FROM api_keys WHERE secret_hash = ?`,
  );
  // `revoked_at IS NULL` keeps the first revocation time: revoking twice is a no-op, not a rewrite.
  const revoke: Stmt<[number, string, string]> = ctx.db.prepare(
    'UPDATE api_keys SET revoked_at = ? WHERE tenant_id = ? AND id = ? AND revoked_at IS NULL',
  );
  const touch: Stmt<[number, string]> = ctx.db.prepare('UPDATE api_keys SET last_used_at = ? WHERE id = ?');

  return {
    async create(input) {
      return ctx.write(() => {
        refs.requireTenant(input.tenant_id);
        const row: ApiKeyRow = {
          id: ctx.newId(),
          tenant_id: input.tenant_id,
          name: input.name,
          prefix: input.prefix,
          scopes: JSON.stringify(input.scopes),
          created_by: input.created_by,
          created_at: ctx.now(),
          last_used_at: null,
          revoked_at: null,
          expires_at: input.expires_at,
        };
        insertOrConflict(() => insert.run({ ...row, secret_hash: input.secret_hash }), 'secret_hash', 'key already exists');
        return toApiKey(row);
      });
    },
    async get(tenantId, id) {
      const row = table.get(tenantId, id);
      return row ? toApiKey(row) : null;
    },
    async list(tenantId, opts) {
      const page = table.list({ tenant_id: tenantId }, opts);
      return { items: page.items.map(toApiKey), next_cursor: page.next_cursor };
    },
    async revoke(tenantId, id, now) {
      return revoke.run(now, tenantId, id).changes > 0;
    },
    async findByHash(secretHash) {
      const row = byHash.get(secretHash);
      return row ? toApiKey(row) : null;
    },
    async touch(id, now) {
      touch.run(now, id);
    },
  };
}
