/**
 * Migration 15: whether a sign-in was signed out is one index seek.
 *
 * Schema notes (why, not what):
 * - the API's guard asks, on every request made with an access token, whether the token's
 *   refresh-token family has a revoked token (refreshTokens.familyRevoked). A family gains a row at
 *   every refresh (every access-token lifetime, 15 min, for as long as the console stays open, its
 *   30-day lifetime sliding), and on (family_id) alone the question walks all of them: 9 µs for
 *   101 rows, growing with the sign-in's age. On (family_id, revoked_at) it is a seek that stops
 *   at the first revoked row, whatever the family's size, and the index covers it.
 * - it replaces refresh_tokens_family, whose every use (revoking a family, by family_id and
 *   revoked_at IS NULL) it serves as well.
 */
import type { Migration } from './migrations.js';

export const MIGRATION_15: Migration = {
  version: 15,
  name: 'refresh token families by revocation',
  sql: `
CREATE INDEX refresh_tokens_family_revoked ON refresh_tokens (family_id, revoked_at);
DROP INDEX refresh_tokens_family;
`,
};
